resource "google_storage_bucket" "this" {
  #checkov:skip=CKV_GCP_62:Access logs need a log bucket the platform team owns; Cloud Audit Logs record data access.
  name                        = var.name
  project                     = var.project_id
  location                    = var.location
  force_destroy               = var.force_destroy
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_version_expiry_days
    }

    action {
      type = "Delete"
    }
  }

  # Async APIs' results and large payloads: deleted after their retention, replaced versions included
  # (with_state ANY: a result a redelivery overwrote goes at the same age).
  dynamic "lifecycle_rule" {
    for_each = var.expiring_prefixes

    content {
      condition {
        age            = lifecycle_rule.value
        matches_prefix = ["${lifecycle_rule.key}/"]
        with_state     = "ANY"
      }

      action {
        type = "Delete"
      }
    }
  }
}

# Serving pods act as this account through Workload Identity: read models, nothing else.
resource "google_service_account" "reader" {
  project      = var.project_id
  account_id   = var.reader_account_id
  display_name = "Reads models from ${var.name}"
}

resource "google_storage_bucket_iam_member" "reader" {
  bucket = google_storage_bucket.this.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.reader.email}"
}
