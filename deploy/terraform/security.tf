# Who may talk to whom: clients -> ALB -> Envoy edge (8080) -> services (gRPC 50051-50053)
# -> RDS (5432). Tasks may open any outbound connection (brokers, ECR, NAT).

resource "aws_security_group" "alb" {
  name        = "${local.name}-alb"
  description = "Load balancer: HTTPS from clients"
  vpc_id      = aws_vpc.main.id
}

resource "aws_vpc_security_group_ingress_rule" "alb_https" {
  for_each          = toset(var.allowed_ingress_cidrs)
  security_group_id = aws_security_group.alb.id
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_ingress_rule" "alb_http" {
  for_each          = toset(var.allowed_ingress_cidrs)
  security_group_id = aws_security_group.alb.id
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
}

resource "aws_vpc_security_group_egress_rule" "alb_to_edge" {
  security_group_id            = aws_security_group.alb.id
  referenced_security_group_id = aws_security_group.edge.id
  ip_protocol                  = "tcp"
  from_port                    = 8080
  to_port                      = 8080
}

resource "aws_security_group" "edge" {
  name        = "${local.name}-edge"
  description = "Envoy edge tasks"
  vpc_id      = aws_vpc.main.id
}

resource "aws_vpc_security_group_ingress_rule" "edge_from_alb" {
  security_group_id            = aws_security_group.edge.id
  referenced_security_group_id = aws_security_group.alb.id
  ip_protocol                  = "tcp"
  from_port                    = 8080
  to_port                      = 8080
}

resource "aws_vpc_security_group_egress_rule" "edge_all" {
  security_group_id = aws_security_group.edge.id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "-1"
}

resource "aws_security_group" "services" {
  name        = "${local.name}-services"
  description = "ingestion, eventhandler, query and actions tasks"
  vpc_id      = aws_vpc.main.id
}

# gRPC calls and gRPC health checks from Envoy.
resource "aws_vpc_security_group_ingress_rule" "services_from_edge" {
  security_group_id            = aws_security_group.services.id
  referenced_security_group_id = aws_security_group.edge.id
  ip_protocol                  = "tcp"
  from_port                    = 50051
  to_port                      = 50056
}

# The time-series service's series API and health checks (issue 17).
resource "aws_vpc_security_group_ingress_rule" "services_from_edge_tsdb" {
  security_group_id            = aws_security_group.services.id
  referenced_security_group_id = aws_security_group.edge.id
  ip_protocol                  = "tcp"
  from_port                    = 50057
  to_port                      = 50057
}

# The inference service's API and health checks from Envoy (issue 18).
resource "aws_vpc_security_group_ingress_rule" "services_from_edge_inference" {
  security_group_id            = aws_security_group.services.id
  referenced_security_group_id = aws_security_group.edge.id
  ip_protocol                  = "tcp"
  from_port                    = 50058
  to_port                      = 50058
}

# Inside the mesh (all service tasks share this group): inference sends ai.anomaly events to
# ingestion on 50051, and query asks inference for a reading's anomaly (lineage) on 50058.
resource "aws_vpc_security_group_ingress_rule" "services_ingestion_from_services" {
  security_group_id            = aws_security_group.services.id
  referenced_security_group_id = aws_security_group.services.id
  ip_protocol                  = "tcp"
  from_port                    = 50051
  to_port                      = 50051
}

resource "aws_vpc_security_group_ingress_rule" "services_inference_from_services" {
  security_group_id            = aws_security_group.services.id
  referenced_security_group_id = aws_security_group.services.id
  ip_protocol                  = "tcp"
  from_port                    = 50058
  to_port                      = 50058
}

resource "aws_vpc_security_group_egress_rule" "services_all" {
  security_group_id = aws_security_group.services.id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "-1"
}

resource "aws_security_group" "db" {
  name        = "${local.name}-db"
  description = "PostgreSQL, reachable from the service tasks only"
  vpc_id      = aws_vpc.main.id
}

resource "aws_vpc_security_group_ingress_rule" "db_from_services" {
  security_group_id            = aws_security_group.db.id
  referenced_security_group_id = aws_security_group.services.id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
}
