# ECS on Fargate: one service per Cornjacket process plus the Envoy edge. The edge finds the
# backends by Cloud Map DNS names (<service>.<namespace>), which Envoy resolves as STRICT_DNS
# clusters, so every task of a service receives traffic and gRPC health checks.

resource "aws_ecs_cluster" "main" {
  name = local.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_service_discovery_private_dns_namespace" "main" {
  name        = "${var.environment}.cornjacket.internal"
  description = "Backends of the Cornjacket Envoy edge"
  vpc         = aws_vpc.main.id
}

locals {
  image     = "${aws_ecr_repository.cornjacket.repository_url}:${var.image_tag}"
  namespace = aws_service_discovery_private_dns_namespace.main.name

  # stop_timeout: ingestion drains calls (5 s), lets relay workers finish (<= 15 s) and
  # flushes the producer (<= 10 s); the event handler drains what was published.
  backends = {
    ingestion    = { port = 50051, stop_timeout = 60 }
    eventhandler = { port = 50053, stop_timeout = 60 }
    query        = { port = 50052, stop_timeout = 30 }
    # The orchestrator lets in-flight webhooks finish (<= 8 s) and commits its offsets.
    actions = { port = 50056, stop_timeout = 40 }
    # Time series (issue 17): drains and commits like the event handler.
    tsdb = { port = 50057, stop_timeout = 30 }
    # Anomaly detection (issue 18): finishes its batch's checkpoint and commits.
    inference = { port = 50058, stop_timeout = 30 }
  }

  # The same CJ_* variables as `make run` and docker-compose.yml; the database URL comes
  # from Secrets Manager (see database.tf).
  common_env = {
    CJ_LOG_LEVEL        = var.log_level
    CJ_LOG_FORMAT       = "json"
    CJ_REDPANDA_BROKERS = var.kafka_brokers
    # Under production a Kafka client is refused unless the bus is sasl_ssl (bus_env).
    CJ_ENVIRONMENT         = "production"
    CJ_TOPIC_PARTITIONS    = tostring(var.topic_partitions)
    CJ_OUTBOX_WORKER_COUNT = tostring(var.outbox_worker_count)
    CJ_INGESTION_HOST      = "0.0.0.0"
    CJ_EVENTHANDLER_HOST   = "0.0.0.0"
    CJ_QUERY_HOST          = "0.0.0.0"
    CJ_ACTIONS_HOST        = "0.0.0.0"
    CJ_TSDB_HOST           = "0.0.0.0"
    CJ_INFERENCE_HOST      = "0.0.0.0"
    # Calls inside the mesh by Cloud Map names (not through the edge), as docker-compose.yml:
    # inference sends ai.anomaly events to ingestion; query asks the others for lineage.
    CJ_INFERENCE_INGESTION_ADDRESS = "ingestion.${local.namespace}:50051"
    CJ_QUERY_INGESTION_ADDRESS     = "ingestion.${local.namespace}:50051"
    CJ_QUERY_EVENTHANDLER_ADDRESS  = "eventhandler.${local.namespace}:50053"
    CJ_QUERY_ACTIONS_ADDRESS       = "actions.${local.namespace}:50056"
    CJ_QUERY_INFERENCE_ADDRESS     = "inference.${local.namespace}:50058"
    # Webhook targets may not point into the VPC or at the instance metadata endpoint.
    CJ_ACTIONS_BLOCK_PRIVATE_TARGETS = "true"
  }

  # TLS and SASL/SCRAM on the bus (kafka.tf), for the services with a Kafka client only;
  # the user and password are per service.
  bus_env = {
    CJ_KAFKA_SECURITY_PROTOCOL = "sasl_ssl"
    CJ_KAFKA_SASL_MECHANISM    = var.kafka_sasl_mechanism
  }

  # Standard gRPC health check against the task's own port; SERVING exits 0.
  grpc_health_check = "import sys, grpc; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; r = g.HealthStub(grpc.insecure_channel('127.0.0.1:%d')).Check(h.HealthCheckRequest(), timeout=3); sys.exit(r.status != h.HealthCheckResponse.SERVING)"

  envoy_config_script = join(" ", [
    "cornjacket envoy-config --out /envoy/envoy.yaml --edge-address 0.0.0.0",
    "--upstream ingestion=ingestion.${local.namespace}:50051",
    "--upstream query=query.${local.namespace}:50052",
    "--upstream eventhandler=eventhandler.${local.namespace}:50053",
    "--upstream actions=actions.${local.namespace}:50056",
    "--upstream tsdb=tsdb.${local.namespace}:50057",
    "--upstream inference=inference.${local.namespace}:50058",
    "--upstream mqtt=mqtt.${local.namespace}:50055",
    "--descriptor /envoy/cornjacket.pb",
    "&& cp /app/gen/envoy/cornjacket.pb /envoy/cornjacket.pb",
  ])
}

resource "aws_service_discovery_service" "backend" {
  for_each = local.backends
  name     = each.key

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

resource "aws_ecs_task_definition" "backend" {
  for_each                 = local.backends
  family                   = "${local.name}-${each.key}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.service_sizes[each.key].cpu
  memory                   = var.service_sizes[each.key].memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  container_definitions = jsonencode([{
    name         = each.key
    image        = local.image
    essential    = true
    command      = ["serve", each.key]
    stopTimeout  = each.value.stop_timeout
    portMappings = [{ containerPort = each.value.port, protocol = "tcp" }]
    environment = [for k, v in merge(
      local.common_env,
      contains(local.bus_users, each.key) ? merge(local.bus_env, { CJ_KAFKA_SASL_USERNAME = "${local.name}-${each.key}" }) : {},
    ) : { name = k, value = v }]
    # Each task gets its own service's database URL only (its login role, database.tf); a
    # service with a Kafka client gets its own bus password (the secret's JSON key); the
    # orchestrator gets the key of the webhook signing secrets at rest.
    secrets = concat(
      [{
        name      = "CJ_${upper(each.key)}_DATABASE_URL"
        valueFrom = "${aws_secretsmanager_secret.db_role[each.key].arn}:url::"
      }],
      contains(local.bus_users, each.key) ? [{
        name      = "CJ_KAFKA_SASL_PASSWORD"
        valueFrom = "${aws_secretsmanager_secret.kafka[each.key].arn}:password::"
      }] : [],
      each.key == "actions" ? [{
        name      = "CJ_ACTIONS_SECRETS_KEY"
        valueFrom = aws_secretsmanager_secret.actions_secrets_key.arn
      }] : [],
    )
    healthCheck = {
      command     = ["CMD", "python", "-c", format(local.grpc_health_check, each.value.port)]
      interval    = 10
      timeout     = 5
      retries     = 3
      startPeriod = 30
    }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.service[each.key].name
        awslogs-region        = var.aws_region
        awslogs-stream-prefix = each.key
      }
    }
  }])
}

resource "aws_ecs_service" "backend" {
  for_each        = local.backends
  name            = each.key
  cluster         = aws_ecs_cluster.main.id
  task_definition = aws_ecs_task_definition.backend[each.key].arn
  desired_count   = var.service_sizes[each.key].desired_count
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
    security_groups  = [aws_security_group.services.id]
    assign_public_ip = false
  }

  service_registries {
    registry_arn = aws_service_discovery_service.backend[each.key].arn
  }
}

# The edge task: a one-shot container renders envoy/envoy.yaml.tmpl (the same
# `cornjacket envoy-config` docker-compose.yml uses) into a task volume, then Envoy starts.
resource "aws_ecs_task_definition" "edge" {
  family                   = "${local.name}-edge"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.service_sizes["edge"].cpu
  memory                   = var.service_sizes["edge"].memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  volume {
    name = "envoy-config"
  }

  container_definitions = jsonencode([
    {
      name      = "envoy-config"
      image     = local.image
      essential = false
      # Root only for this one-shot: a fresh Fargate task volume is owned by root.
      user       = "0"
      entryPoint = ["sh", "-c"]
      command    = [local.envoy_config_script]
      # Bearer JWTs are verified at the edge against the identity provider's JWKS
      # (README "Authentication"); envoy-config refuses to render without a key source.
      environment = [
        { name = "CJ_AUTH_JWKS_URI", value = var.auth_jwks_uri },
        { name = "CJ_AUTH_ISSUER", value = var.auth_issuer },
        { name = "CJ_AUTH_AUDIENCE", value = var.auth_audience },
        # The names clients reach the edge by (others get 421) and the ALB in front, whose
        # X-Forwarded-For entry is the client's address (per-client rate budgets).
        { name = "CJ_EDGE_HOSTS", value = join(",", concat([aws_lb.edge.dns_name], var.edge_hosts)) },
        { name = "CJ_EDGE_TRUSTED_HOPS", value = "1" },
      ]
      mountPoints = [{ sourceVolume = "envoy-config", containerPath = "/envoy" }]
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.service["edge"].name
          awslogs-region        = var.aws_region
          awslogs-stream-prefix = "envoy-config"
        }
      }
    },
    {
      name         = "envoy"
      image        = var.envoy_image
      essential    = true
      command      = ["envoy", "-c", "/envoy/envoy.yaml", "--concurrency", tostring(var.envoy_concurrency)]
      dependsOn    = [{ containerName = "envoy-config", condition = "SUCCESS" }]
      portMappings = [{ containerPort = 8080, protocol = "tcp" }]
      mountPoints  = [{ sourceVolume = "envoy-config", containerPath = "/envoy", readOnly = true }]
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.service["edge"].name
          awslogs-region        = var.aws_region
          awslogs-stream-prefix = "envoy"
        }
      }
    },
  ])
}

resource "aws_ecs_service" "edge" {
  name            = "edge"
  cluster         = aws_ecs_cluster.main.id
  task_definition = aws_ecs_task_definition.edge.arn
  desired_count   = var.service_sizes["edge"].desired_count
  launch_type     = "FARGATE"
  propagate_tags  = "SERVICE"

  health_check_grace_period_seconds  = 60
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = aws_subnet.private[*].id
    security_groups  = [aws_security_group.edge.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.edge_http.arn
    container_name   = "envoy"
    container_port   = 8080
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.edge_grpc.arn
    container_name   = "envoy"
    container_port   = 8080
  }

  depends_on = [aws_lb_listener.https]
}

# One-off operator task (never a service): `cornjacket db-roles` by default (the master login
# applies every schema's migrations and creates or updates the per-service login roles with
# the passwords of database.tf), or with a command override `replay`, `republish` or
# `migrate`, which use the owners' URLs. Run it before the first deploy of the services and
# after adding a schema (deploy/README.md "Database logins").
resource "aws_ecs_task_definition" "operator" {
  family                   = "${local.name}-operator"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = 256
  memory                   = 512
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  container_definitions = jsonencode([{
    name        = "operator"
    image       = local.image
    essential   = true
    command     = ["db-roles"]
    environment = [for k, v in local.common_env : { name = k, value = v }]
    secrets = concat(
      [{ name = "CJ_DB_ADMIN_URL", valueFrom = aws_secretsmanager_secret.database_url.arn }],
      [for name in local.db_roles : {
        name      = "CJ_DB_ROLES_${upper(name)}_PASSWORD"
        valueFrom = "${aws_secretsmanager_secret.db_role[name].arn}:password::"
      }],
      [for name in setsubtract(local.db_roles, ["query"]) : {
        name      = "CJ_${upper(name)}_DATABASE_URL"
        valueFrom = "${aws_secretsmanager_secret.db_role[name].arn}:url::"
      }],
    )
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.service["ingestion"].name
        awslogs-region        = var.aws_region
        awslogs-stream-prefix = "operator"
      }
    }
  }])
}
