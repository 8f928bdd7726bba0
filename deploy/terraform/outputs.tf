output "endpoint" {
  description = "HTTPS endpoint (HTTP/JSON and gRPC); point a DNS name covered by the certificate at it."
  value       = "https://${aws_lb.edge.dns_name}"
}

output "ecr_repository_url" {
  description = "Push the cornjacket image here, tagged with var.image_tag."
  value       = aws_ecr_repository.cornjacket.repository_url
}

output "ecs_cluster_name" {
  value = aws_ecs_cluster.main.name
}

output "database_url_secret_arn" {
  description = "Secrets Manager secret holding the postgresql:// URL."
  value       = aws_secretsmanager_secret.database_url.arn
}

output "private_subnet_ids" {
  description = "For one-off tasks such as `cornjacket migrate all`."
  value       = aws_subnet.private[*].id
}

output "services_security_group_id" {
  value = aws_security_group.services.id
}

output "mqtt_endpoint" {
  description = "MQTT over TLS for devices; point a DNS name covered by the certificate at it."
  value       = "mqtts://${aws_lb.mqtt.dns_name}:8883"
}

output "mqtt_users_secret_arn" {
  description = "Put the MQTT users TOML (cornjacket mqtt add-user --file ...) into this secret."
  value       = aws_secretsmanager_secret.mqtt_users.arn
}
