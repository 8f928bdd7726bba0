variable "environment" {
  description = "Environment name (dev, prod); every resource name starts with cornjacket-<environment>."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,15}$", var.environment))
    error_message = "environment must be 2-16 lowercase letters, digits or '-'."
  }
}

variable "aws_region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "eu-central-1"
}

variable "vpc_cidr" {
  description = "CIDR of the VPC; /24 public and private subnets are carved from it in two AZs."
  type        = string
  default     = "10.40.0.0/16"
}

variable "single_nat_gateway" {
  description = "One NAT gateway for both AZs (cheaper, dev) instead of one per AZ (prod)."
  type        = bool
  default     = true
}

variable "allowed_ingress_cidrs" {
  description = "Client CIDRs allowed to reach the load balancer."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "mqtt_allowed_cidrs" {
  description = "Device CIDRs allowed to reach the MQTT gateway (TLS on 8883 at the NLB)."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "certificate_arn" {
  description = "ACM certificate for the HTTPS listener (the ALB speaks HTTP/2 and gRPC only over TLS)."
  type        = string
}

variable "image_tag" {
  description = "Tag of the cornjacket image in the ECR repository this configuration creates."
  type        = string
}

variable "auth_jwks_uri" {
  description = "https URL of the JWKS whose keys sign API tokens (your identity provider's); Envoy verifies every /api/v1 and gRPC call against it."
  type        = string
  validation {
    condition     = startswith(var.auth_jwks_uri, "https://")
    error_message = "auth_jwks_uri must be an https:// URL."
  }
}

variable "auth_issuer" {
  description = "The iss claim API tokens must carry (CJ_AUTH_ISSUER)."
  type        = string
}

variable "auth_audience" {
  description = "The aud claim API tokens must carry (CJ_AUTH_AUDIENCE)."
  type        = string
  default     = "cornjacket"
}

variable "envoy_image" {
  description = "Envoy image of the edge task; the same Envoy version the local stack runs."
  type        = string
  default     = "envoyproxy/envoy:v1.40-latest"
}

variable "envoy_concurrency" {
  description = "Envoy worker threads (--concurrency) per edge task."
  type        = number
  default     = 1
}

variable "kafka_brokers" {
  description = "Kafka-protocol bootstrap list of the brokers' SASL/SCRAM TLS listener (MSK: port 9096) as host:port,...; becomes CJ_REDPANDA_BROKERS."
  type        = string

  validation {
    condition     = can(regex("^[^,:\\s]+:[0-9]+(,[^,:\\s]+:[0-9]+)*$", var.kafka_brokers))
    error_message = "kafka_brokers must be a comma-separated host:port list."
  }
}

variable "kafka_sasl_mechanism" {
  description = "SASL mechanism of the bus users (CJ_KAFKA_SASL_MECHANISM); MSK supports SCRAM-SHA-512."
  type        = string
  default     = "SCRAM-SHA-512"

  validation {
    condition     = contains(["SCRAM-SHA-512", "SCRAM-SHA-256"], var.kafka_sasl_mechanism)
    error_message = "kafka_sasl_mechanism must be SCRAM-SHA-512 or SCRAM-SHA-256."
  }
}

variable "msk_cluster_arn" {
  description = "ARN of the MSK cluster whose SCRAM users are the services' (empty: associate the secrets outside this stack)."
  type        = string
  default     = ""
}

variable "topic_partitions" {
  description = "Partitions of topics ingestion creates when they are missing (CJ_TOPIC_PARTITIONS)."
  type        = number
  default     = 3
}

variable "outbox_worker_count" {
  description = "Outbox relay workers per ingestion task (CJ_OUTBOX_WORKER_COUNT)."
  type        = number
  default     = 4
}

variable "log_level" {
  description = "CJ_LOG_LEVEL of every service."
  type        = string
  default     = "info"

  validation {
    condition     = contains(["debug", "info", "warning", "error", "critical"], var.log_level)
    error_message = "log_level must be debug, info, warning, error or critical."
  }
}

variable "log_retention_days" {
  description = "CloudWatch Logs retention."
  type        = number
  default     = 30
}

variable "service_sizes" {
  description = "Fargate CPU units, memory (MiB) and task count per ECS service."
  type = map(object({
    cpu           = number
    memory        = number
    desired_count = number
  }))
  default = {
    ingestion    = { cpu = 512, memory = 1024, desired_count = 1 }
    eventhandler = { cpu = 512, memory = 1024, desired_count = 1 }
    query        = { cpu = 256, memory = 512, desired_count = 1 }
    actions      = { cpu = 256, memory = 512, desired_count = 1 }
    tsdb         = { cpu = 512, memory = 1024, desired_count = 1 }
    inference    = { cpu = 512, memory = 1024, desired_count = 1 }
    mqtt         = { cpu = 256, memory = 512, desired_count = 1 }
    edge         = { cpu = 256, memory = 512, desired_count = 1 }
  }

  validation {
    condition     = length(setsubtract(["ingestion", "eventhandler", "query", "actions", "mqtt", "edge", "tsdb", "inference"], keys(var.service_sizes))) == 0
    error_message = "service_sizes needs entries for ingestion, eventhandler, query, actions, mqtt, edge, tsdb and inference."
  }
}

variable "db_engine_version" {
  description = "RDS PostgreSQL major version; the migrations use uuidv7(), which needs 18."
  type        = string
  default     = "18"
}

variable "db_instance_class" {
  description = "RDS instance class."
  type        = string
  default     = "db.t4g.small"
}

variable "db_allocated_storage" {
  description = "Initial storage in GiB."
  type        = number
  default     = 20
}

variable "db_max_allocated_storage" {
  description = "Storage autoscaling ceiling in GiB."
  type        = number
  default     = 100
}

variable "db_multi_az" {
  description = "Standby replica in the second AZ."
  type        = bool
  default     = false
}

variable "db_backup_retention_days" {
  description = "Automated backup retention."
  type        = number
  default     = 7
}

variable "db_deletion_protection" {
  description = "Refuse to delete the database instance."
  type        = bool
  default     = true
}

variable "db_skip_final_snapshot" {
  description = "Delete the database without a final snapshot (only for throwaway environments)."
  type        = bool
  default     = false
}

variable "secret_recovery_window_days" {
  description = "Days a deleted Secrets Manager secret can be restored (0 deletes at once)."
  type        = number
  default     = 30
}

variable "alb_deletion_protection" {
  description = "Refuse to delete the load balancer."
  type        = bool
  default     = false
}

variable "edge_hosts" {
  description = "Host names (besides the ALB's own DNS name) clients use to reach the edge, e.g. your domain; Envoy answers 421 to any other (CJ_EDGE_HOSTS)."
  type        = list(string)
  default     = []
}
