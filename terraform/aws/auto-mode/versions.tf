terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # aws_eks_access_policy_association, and the eks module's compute_config (5.79.0).
      version = ">= 5.79, < 6.0"
    }
  }
}
