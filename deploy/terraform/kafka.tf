# The bus: every Kafka client uses TLS and SASL/SCRAM (CJ_KAFKA_SECURITY_PROTOCOL=sasl_ssl,
# MSK's SASL/SCRAM listener on 9096). Each service that uses the bus has its own user, whose
# password is a Secrets Manager secret in MSK's format (name AmazonMSK_*, a customer managed
# KMS key, {"username", "password"}); with msk_cluster_arn set the secrets are associated
# with the cluster. Topic ACLs per user: deploy/README.md "Bus ACLs". Plaintext (9092) is
# refused by the services themselves under CJ_ENVIRONMENT=production.

locals {
  # The processes with a Kafka client: ingestion's relay produces, the event handler and the
  # action orchestrator consume; query's live streams read (issue 19, no group of its own).
  bus_users = toset(["ingestion", "eventhandler", "actions", "tsdb", "inference", "query"])
}

resource "aws_kms_key" "kafka" {
  description             = "${local.name}: MSK SASL/SCRAM secrets"
  enable_key_rotation     = true
  deletion_window_in_days = 7
}

resource "random_password" "kafka" {
  for_each = local.bus_users
  length   = 40
  special  = false
}

resource "aws_secretsmanager_secret" "kafka" {
  for_each                = local.bus_users
  name                    = "AmazonMSK_${local.name}-${each.key}"
  description             = "Kafka SASL/SCRAM user of ${each.key}"
  kms_key_id              = aws_kms_key.kafka.arn
  recovery_window_in_days = var.secret_recovery_window_days
}

resource "aws_secretsmanager_secret_version" "kafka" {
  for_each  = local.bus_users
  secret_id = aws_secretsmanager_secret.kafka[each.key].id
  secret_string = jsonencode({
    username = "${local.name}-${each.key}"
    password = random_password.kafka[each.key].result
  })
}

resource "aws_msk_scram_secret_association" "kafka" {
  count           = var.msk_cluster_arn == "" ? 0 : 1
  cluster_arn     = var.msk_cluster_arn
  secret_arn_list = [for s in aws_secretsmanager_secret.kafka : s.arn]
  depends_on      = [aws_secretsmanager_secret_version.kafka]
}
