output "bucket_name" {
  description = "Name of the model bucket."
  value       = google_storage_bucket.this.name
}

output "bucket_url" {
  description = "gs:// URL of the model bucket."
  value       = google_storage_bucket.this.url
}

output "reader_service_account_id" {
  description = "Full resource name of the reader service account, for IAM bindings on it."
  value       = google_service_account.reader.name
}

output "reader_service_account" {
  description = "Email of the service account that may only read the models; serving pods use it through Workload Identity."
  value       = google_service_account.reader.email
}
