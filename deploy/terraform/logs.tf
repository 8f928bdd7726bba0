# The services log one JSON object per line (CJ_LOG_FORMAT=json) to stderr; awslogs ships it.
resource "aws_cloudwatch_log_group" "service" {
  for_each          = toset(["ingestion", "eventhandler", "query", "actions", "mqtt", "edge", "tsdb", "inference"])
  name              = "/ecs/${local.name}/${each.key}"
  retention_in_days = var.log_retention_days
}
