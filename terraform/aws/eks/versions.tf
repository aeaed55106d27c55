terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # compute_config, storage_config and elastic_load_balancing (EKS Auto Mode) came in 5.79.0.
      version = ">= 5.79, < 6.0"
    }
  }
}
