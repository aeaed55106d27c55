output "name" {
  description = "Name of the node pool."
  value       = google_container_node_pool.this.name
}

output "labels" {
  description = "Kubernetes labels set on the nodes (GKE adds its accelerator and TPU topology labels)."
  value       = var.labels
}
