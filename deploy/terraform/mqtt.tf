# The MQTT gateway: devices connect over TLS (8883) to a Network Load Balancer, which ends
# TLS with the same ACM certificate as the ALB and forwards plain MQTT to the tasks' 1883.
# The users TOML (argon2 hashes, ACLs; `cornjacket mqtt add-user`) is a Secrets Manager
# secret the operator fills; the tasks read it as CJ_MQTT_USERS. Envoy's /health includes
# the gateway through its gRPC health port (50055, Cloud Map name mqtt.<namespace>).

resource "aws_secretsmanager_secret" "mqtt_users" {
  name                    = "${local.name}/mqtt-users"
  description             = "Cornjacket MQTT users TOML (set its value with the AWS CLI or console)"
  recovery_window_in_days = var.secret_recovery_window_days
}

resource "aws_security_group" "mqtt" {
  name        = "${local.name}-mqtt"
  description = "MQTT gateway tasks: 1883 from the NLB, gRPC health from the edge"
  vpc_id      = aws_vpc.main.id
}

# The NLB has no security group: it passes the clients' addresses through, so the allowed
# device ranges are enforced here.
resource "aws_vpc_security_group_ingress_rule" "mqtt_from_devices" {
  for_each          = toset(var.mqtt_allowed_cidrs)
  security_group_id = aws_security_group.mqtt.id
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 1883
  to_port           = 1883
}

# The NLB's health checks come from its nodes in the public subnets, not from the whole VPC.
resource "aws_vpc_security_group_ingress_rule" "mqtt_health_from_nlb" {
  count             = length(aws_subnet.public)
  security_group_id = aws_security_group.mqtt.id
  cidr_ipv4         = aws_subnet.public[count.index].cidr_block
  ip_protocol       = "tcp"
  from_port         = 1883
  to_port           = 1883
}

resource "aws_vpc_security_group_ingress_rule" "mqtt_health_from_edge" {
  security_group_id            = aws_security_group.mqtt.id
  referenced_security_group_id = aws_security_group.edge.id
  ip_protocol                  = "tcp"
  from_port                    = 50055
  to_port                      = 50055
}

resource "aws_vpc_security_group_egress_rule" "mqtt_all" {
  security_group_id = aws_security_group.mqtt.id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "-1"
}

# The gateway calls ingestion's gRPC port.
resource "aws_vpc_security_group_ingress_rule" "services_from_mqtt" {
  security_group_id            = aws_security_group.services.id
  referenced_security_group_id = aws_security_group.mqtt.id
  ip_protocol                  = "tcp"
  from_port                    = 50051
  to_port                      = 50051
}

resource "aws_lb" "mqtt" {
  name                             = "${local.name}-mqtt"
  load_balancer_type               = "network"
  internal                         = false
  subnets                          = aws_subnet.public[*].id
  enable_cross_zone_load_balancing = true
  enable_deletion_protection       = var.alb_deletion_protection
}

resource "aws_lb_target_group" "mqtt" {
  name                 = "${local.name}-mqtt"
  vpc_id               = aws_vpc.main.id
  port                 = 1883
  protocol             = "TCP"
  target_type          = "ip"
  deregistration_delay = 30
  # Devices' own addresses reach the tasks, so mqtt_allowed_cidrs is enforced by the
  # tasks' security group (the NLB has none).
  preserve_client_ip = "true"

  health_check {
    protocol            = "TCP"
    port                = "1883"
    interval            = 10
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }
}

resource "aws_lb_listener" "mqtt_tls" {
  load_balancer_arn = aws_lb.mqtt.arn
  port              = 8883
  protocol          = "TLS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.mqtt.arn
  }
}

resource "aws_service_discovery_service" "mqtt" {
  name = "mqtt"

  dns_config {
    namespace_id   = aws_service_discovery_private_dns_namespace.main.id
    routing_policy = "MULTIVALUE"

    dns_records {
      type = "A"
      ttl  = 10
    }
  }

  health_check_custom_config {}
}

resource "aws_ecs_task_definition" "mqtt" {
  family                   = "${local.name}-mqtt"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.service_sizes["mqtt"].cpu
  memory                   = var.service_sizes["mqtt"].memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  container_definitions = jsonencode([{
    name      = "mqtt"
    image     = local.image
    essential = true
    command   = ["serve", "mqtt"]
    # Settles queued publishes (their PUBACKs go out) before disconnecting clients.
    stopTimeout = 30
    portMappings = [
      { containerPort = 1883, protocol = "tcp" },
      { containerPort = 50055, protocol = "tcp" },
    ]
    environment = [for k, v in merge(local.common_env, {
      CJ_MQTT_HOST              = "0.0.0.0"
      CJ_MQTT_INGESTION_ADDRESS = "ingestion.${local.namespace}:50051"
      CJ_ENVIRONMENT            = "production"
    }) : { name = k, value = v }]
    secrets = [{ name = "CJ_MQTT_USERS", valueFrom = aws_secretsmanager_secret.mqtt_users.arn }]
    healthCheck = {
      command     = ["CMD", "python", "-c", format(local.grpc_health_check, 50055)]
      interval    = 10
      timeout     = 5
      retries     = 3
      startPeriod = 30
    }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.service["mqtt"].name
        awslogs-region        = var.aws_region
        awslogs-stream-prefix = "mqtt"
      }
    }
  }])
}

resource "aws_ecs_service" "mqtt" {
  name            = "mqtt"
  cluster         = aws_ecs_cluster.main.id
  task_definition = aws_ecs_task_definition.mqtt.arn
  desired_count   = var.service_sizes["mqtt"].desired_count
  launch_type     = "FARGATE"
  propagate_tags  = "SERVICE"

  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = aws_subnet.private[*].id
    security_groups  = [aws_security_group.mqtt.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.mqtt.arn
    container_name   = "mqtt"
    container_port   = 1883
  }

  service_registries {
    registry_arn = aws_service_discovery_service.mqtt.arn
  }

  depends_on = [aws_lb_listener.mqtt_tls]
}
