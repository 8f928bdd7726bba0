# One image for every service (the Dockerfile at the repository root); `cornjacket serve
# <service>` picks the process, and the edge task uses it to render Envoy's configuration.
resource "aws_ecr_repository" "cornjacket" {
  name                 = local.name
  image_tag_mutability = "IMMUTABLE"

  image_scanning_configuration {
    scan_on_push = true
  }
}

resource "aws_ecr_lifecycle_policy" "cornjacket" {
  repository = aws_ecr_repository.cornjacket.name
  policy = jsonencode({
    rules = [{
      rulePriority = 1
      description  = "keep the 30 most recent images"
      selection = {
        tagStatus   = "any"
        countType   = "imageCountMoreThan"
        countNumber = 30
      }
      action = { type = "expire" }
    }]
  })
}
