# terraform apply -var-file=environments/prod.tfvars -var image_tag=<release tag>
environment = "prod"
aws_region  = "eu-central-1"
vpc_cidr    = "10.50.0.0/16"

single_nat_gateway    = false
allowed_ingress_cidrs = ["0.0.0.0/0"]
certificate_arn       = "arn:aws:acm:eu-central-1:111122223333:certificate/11111111-1111-1111-1111-111111111111"

# Three brokers; create the topics with replication factor 3 before the first deploy
# (ingestion only creates missing topics, with replication factor 1).
kafka_brokers    = "b-1.cornjacket-prod.example.kafka.eu-central-1.amazonaws.com:9096,b-2.cornjacket-prod.example.kafka.eu-central-1.amazonaws.com:9096,b-3.cornjacket-prod.example.kafka.eu-central-1.amazonaws.com:9096"
topic_partitions = 12

log_level          = "info"
log_retention_days = 90

service_sizes = {
  ingestion    = { cpu = 1024, memory = 2048, desired_count = 2 }
  eventhandler = { cpu = 1024, memory = 2048, desired_count = 2 }
  query        = { cpu = 512, memory = 1024, desired_count = 2 }
  actions      = { cpu = 512, memory = 1024, desired_count = 2 }
  mqtt         = { cpu = 512, memory = 1024, desired_count = 2 }
  edge         = { cpu = 512, memory = 1024, desired_count = 2 }
  tsdb         = { cpu = 1024, memory = 2048, desired_count = 2 }
  inference    = { cpu = 1024, memory = 2048, desired_count = 2 }
}

db_instance_class           = "db.m7g.large"
db_allocated_storage        = 100
db_max_allocated_storage    = 500
db_multi_az                 = true
db_backup_retention_days    = 14
db_deletion_protection      = true
db_skip_final_snapshot      = false
secret_recovery_window_days = 30
alb_deletion_protection     = true
# API tokens: the identity provider that signs them (scopes events:write, read, admin).
auth_jwks_uri = "https://auth.example.com/.well-known/jwks.json"
auth_issuer   = "https://auth.example.com/"
auth_audience = "cornjacket-prod"
