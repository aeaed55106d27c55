resource "google_artifact_registry_repository" "this" {
  #checkov:skip=CKV_GCP_84:Google-managed encryption; a customer-managed key needs a KMS key ring the platform team owns.
  project       = var.project_id
  location      = var.location
  repository_id = var.name
  format        = "DOCKER"
  description   = "Predictor images of ${var.name}, tagged by content hash"

  docker_config {
    immutable_tags = true
  }

  cleanup_policies {
    id     = "expire-untagged"
    action = "DELETE"

    condition {
      tag_state  = "UNTAGGED"
      older_than = "${var.untagged_image_expiry_days * 86400}s"
    }
  }
}
