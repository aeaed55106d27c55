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

  # Objects that are not models (async APIs' payloads and results) are left out by an IAM condition on the
  # object's name (IAM's resource name for an object is projects/_/buckets/BUCKET/objects/NAME; a listing
  # is checked against the bucket, projects/_/buckets/BUCKET, so it stays allowed).
  dynamic "condition" {
    for_each = length(var.private_prefixes) > 0 ? [1] : []
    content {
      title       = "mlkit-models-only"
      description = "Every object of ${var.name} but what is under ${join(", ", var.private_prefixes)}"
      expression  = join(" && ", [for prefix in var.private_prefixes : "!resource.name.startsWith(\"projects/_/buckets/${var.name}/objects/${prefix}\")"])
    }
  }

  # A binding with a condition is another binding than the one without: the new one is made before the old
  # one goes, so serving pods keep reading models while the stack is applied.
  lifecycle {
    create_before_destroy = true
  }
}
