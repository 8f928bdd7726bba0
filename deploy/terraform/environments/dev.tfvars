# terraform apply -var-file=environments/dev.tfvars -var image_tag=<git sha>
environment = "dev"
aws_region  = "eu-central-1"
vpc_cidr    = "10.40.0.0/16"

single_nat_gateway    = true
allowed_ingress_cidrs = ["0.0.0.0/0"]
certificate_arn       = "arn:aws:acm:eu-central-1:111122223333:certificate/00000000-0000-0000-0000-000000000000"

# MSK's SASL/SCRAM TLS listener (port 9096; kafka.tf makes the users): the bootstrap list.
kafka_brokers    = "b-1.cornjacket-dev.example.kafka.eu-central-1.amazonaws.com:9096,b-2.cornjacket-dev.example.kafka.eu-central-1.amazonaws.com:9096"
topic_partitions = 3

log_level          = "debug"
log_retention_days = 14

service_sizes = {
  ingestion    = { cpu = 512, memory = 1024, desired_count = 1 }
  eventhandler = { cpu = 512, memory = 1024, desired_count = 1 }
  query        = { cpu = 256, memory = 512, desired_count = 1 }
  actions      = { cpu = 256, memory = 512, desired_count = 1 }
  mqtt         = { cpu = 256, memory = 512, desired_count = 1 }
  edge         = { cpu = 256, memory = 512, desired_count = 1 }
  tsdb         = { cpu = 512, memory = 1024, desired_count = 1 }
  inference    = { cpu = 512, memory = 1024, desired_count = 1 }
}

db_instance_class           = "db.t4g.micro"
db_multi_az                 = false
db_backup_retention_days    = 1
db_deletion_protection      = false
db_skip_final_snapshot      = true
secret_recovery_window_days = 0
alb_deletion_protection     = false
# API tokens: the identity provider that signs them (scopes events:write, read, admin).
auth_jwks_uri = "https://auth.example.com/.well-known/jwks.json"
auth_issuer   = "https://auth.example.com/"
auth_audience = "cornjacket-dev"
