output "repository_id" {
  description = "ID of the repository."
  value       = google_artifact_registry_repository.this.repository_id
}

output "repository_url" {
  description = "Image prefix to push and pull: REGION-docker.pkg.dev/PROJECT/REPOSITORY."
  value       = "${var.location}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.this.repository_id}"
}
