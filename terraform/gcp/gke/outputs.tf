output "cluster_name" {
  description = "Name of the GKE cluster."
  value       = google_container_cluster.this.name
}

output "cluster_id" {
  description = "ID of the GKE cluster."
  value       = google_container_cluster.this.id
}

output "cluster_location" {
  description = "Region or zone of the cluster."
  value       = google_container_cluster.this.location
}

output "cluster_endpoint" {
  description = "Address of the Kubernetes API server."
  value       = google_container_cluster.this.endpoint
}

output "cluster_ca_certificate" {
  description = "Base64-encoded certificate authority of the API server."
  value       = google_container_cluster.this.master_auth[0].cluster_ca_certificate
}

output "workload_pool" {
  # Read from the cluster, not rebuilt from the project ID: a binding that uses it then waits for the
  # cluster, whose creation is what brings a project's first Workload Identity pool into being.
  description = "Workload Identity pool: Kubernetes service accounts act as Google service accounts through it."
  value       = google_container_cluster.this.workload_identity_config[0].workload_pool
}

output "node_service_account" {
  description = "Email of the service account the nodes run as."
  value       = google_service_account.nodes.email
}
