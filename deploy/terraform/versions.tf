terraform {
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }

  # Keep one state per environment in a remote backend, for example an S3 bucket:
  #   backend "s3" {}
  # with `terraform init -backend-config=bucket=... -backend-config=key=cornjacket/dev.tfstate`.
}

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = {
      Project     = "cornjacket"
      Environment = var.environment
      ManagedBy   = "terraform"
    }
  }
}
