# Public entry. Envoy serves HTTP/JSON and native gRPC on one port (8080); the ALB keeps them
# apart because it forwards gRPC only to a target group of protocol version GRPC:
#   content-type application/grpc*  -> edge-grpc (HTTP/2 to Envoy)
#   anything else                   -> edge-http (HTTP/1.1 to Envoy, which transcodes to gRPC)
# Both target groups hold the same Envoy tasks.

resource "aws_lb" "edge" {
  name                       = local.name
  load_balancer_type         = "application"
  internal                   = false
  subnets                    = aws_subnet.public[*].id
  security_groups            = [aws_security_group.alb.id]
  drop_invalid_header_fields = true
  enable_deletion_protection = var.alb_deletion_protection
}

resource "aws_lb_target_group" "edge_http" {
  name                 = "${local.name}-edge-http"
  vpc_id               = aws_vpc.main.id
  target_type          = "ip"
  protocol             = "HTTP"
  protocol_version     = "HTTP1"
  port                 = 8080
  deregistration_delay = 30

  # Liveness of Envoy, not readiness of the backends: Envoy's /health answers 503 while a
  # backend is NOT_SERVING (e.g. the database is down), and replacing the edge tasks would
  # not help then, so 503 counts as alive here.
  health_check {
    path                = "/health"
    matcher             = "200,503"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
}

resource "aws_lb_target_group" "edge_grpc" {
  name                 = "${local.name}-edge-grpc"
  vpc_id               = aws_vpc.main.id
  target_type          = "ip"
  protocol             = "HTTP"
  protocol_version     = "GRPC"
  port                 = 8080
  deregistration_delay = 30

  # The ALB's default gRPC probe path has no route in Envoy; any gRPC status in the answer
  # shows that Envoy is up (the same liveness meaning as edge-http's check).
  health_check {
    path                = "/AWS.ALB/healthcheck"
    matcher             = "0-99"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.edge.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.edge_http.arn
  }
}

resource "aws_lb_listener_rule" "grpc" {
  listener_arn = aws_lb_listener.https.arn
  priority     = 10

  condition {
    http_header {
      http_header_name = "content-type"
      values           = ["application/grpc*"]
    }
  }

  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.edge_grpc.arn
  }
}

resource "aws_lb_listener" "http" {
  load_balancer_arn = aws_lb.edge.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type = "redirect"

    redirect {
      protocol    = "HTTPS"
      port        = "443"
      status_code = "HTTP_301"
    }
  }
}
