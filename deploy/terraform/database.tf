# One RDS PostgreSQL instance; each service keeps its tables in its own schema (ingestion,
# eventhandler, actions), owned by its own login role (`cornjacket db-roles`), and applies
# its own migrations at start-up under an advisory lock.

resource "aws_db_subnet_group" "main" {
  name       = local.name
  subnet_ids = aws_subnet.private[*].id
}

resource "random_password" "db" {
  length  = 32
  special = false # it is embedded in a postgresql:// URL
}

resource "aws_db_instance" "main" {
  identifier                   = local.name
  engine                       = "postgres"
  engine_version               = var.db_engine_version
  instance_class               = var.db_instance_class
  allocated_storage            = var.db_allocated_storage
  max_allocated_storage        = var.db_max_allocated_storage
  storage_type                 = "gp3"
  storage_encrypted            = true
  db_name                      = "cornjacket"
  username                     = "cornjacket"
  password                     = random_password.db.result
  db_subnet_group_name         = aws_db_subnet_group.main.name
  vpc_security_group_ids       = [aws_security_group.db.id]
  publicly_accessible          = false
  multi_az                     = var.db_multi_az
  backup_retention_period      = var.db_backup_retention_days
  deletion_protection          = var.db_deletion_protection
  skip_final_snapshot          = var.db_skip_final_snapshot
  final_snapshot_identifier    = var.db_skip_final_snapshot ? null : "${local.name}-final"
  auto_minor_version_upgrade   = true
  performance_insights_enabled = true
}

locals {
  # Every connection verifies the server's certificate and host name against the RDS CA
  # bundle baked into the image (Dockerfile: /app/certs/rds-global-bundle.pem).
  db_tls = "sslmode=verify-full&sslrootcert=/app/certs/rds-global-bundle.pem"
  db_at  = "${aws_db_instance.main.address}:${aws_db_instance.main.port}/${aws_db_instance.main.db_name}"
  # One login role per service (`cornjacket db-roles`): each owns its own schema only; query
  # may only read eventhandler.projections. The relay runs inside ingestion (its role).
  db_roles = toset(["ingestion", "eventhandler", "query", "actions", "tsdb", "inference"])
}

# The master login's URL: only the operator task (db-roles) gets it.
resource "aws_secretsmanager_secret" "database_url" {
  name                    = "${local.name}/database-url"
  description             = "postgresql:// URL of the Cornjacket database's master login (db-roles only)"
  recovery_window_in_days = var.secret_recovery_window_days
}

resource "aws_secretsmanager_secret_version" "database_url" {
  secret_id     = aws_secretsmanager_secret.database_url.id
  secret_string = "postgresql://${aws_db_instance.main.username}:${random_password.db.result}@${local.db_at}?${local.db_tls}"
}

resource "random_password" "db_role" {
  for_each = local.db_roles
  length   = 32
  special  = false # it is embedded in a postgresql:// URL
}

# Per service: {"username", "password", "url"}. ECS injects the url as CJ_<SERVICE>_DATABASE_URL
# into that service's tasks only; the operator task gives the password to db-roles.
resource "aws_secretsmanager_secret" "db_role" {
  for_each                = local.db_roles
  name                    = "${local.name}/database/${each.key}"
  description             = "Login role cj_${each.key} of the Cornjacket database"
  recovery_window_in_days = var.secret_recovery_window_days
}

resource "aws_secretsmanager_secret_version" "db_role" {
  for_each  = local.db_roles
  secret_id = aws_secretsmanager_secret.db_role[each.key].id
  secret_string = jsonencode({
    username = "cj_${each.key}"
    password = random_password.db_role[each.key].result
    url      = "postgresql://cj_${each.key}:${random_password.db_role[each.key].result}@${local.db_at}?${local.db_tls}"
  })
}

# The AES-GCM key that seals the webhook signing secrets at rest; the orchestrator refuses to
# start without one (CJ_ACTIONS_SECRETS_KEY).
resource "random_bytes" "actions_secrets_key" {
  length = 32
}

resource "aws_secretsmanager_secret" "actions_secrets_key" {
  name                    = "${local.name}/actions-secrets-key"
  description             = "Key of the webhook signing secrets at rest (base64, 32 bytes)"
  recovery_window_in_days = var.secret_recovery_window_days
}

resource "aws_secretsmanager_secret_version" "actions_secrets_key" {
  secret_id     = aws_secretsmanager_secret.actions_secrets_key.id
  secret_string = random_bytes.actions_secrets_key.base64
}
