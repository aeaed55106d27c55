output "network_id" {
  description = "ID of the VPC network."
  value       = google_compute_network.this.id
}

output "network_name" {
  description = "Name of the VPC network."
  value       = google_compute_network.this.name
}

output "subnetwork_name" {
  description = "Name of the subnetwork the nodes run in."
  value       = google_compute_subnetwork.this.name
}

output "pods_range_name" {
  description = "Name of the secondary range for pods."
  value       = "pods"
}

output "services_range_name" {
  description = "Name of the secondary range for Services."
  value       = "services"
}
