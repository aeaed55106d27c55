variable "name" {
  description = "Name of the VPC network; prefix of the module's other resources."
  type        = string
}

variable "project_id" {
  description = "GCP project ID."
  type        = string
}

variable "region" {
  description = "Region of the subnetwork, router and NAT."
  type        = string
}

variable "cidr" {
  description = "Primary IPv4 range of the subnetwork: the nodes."
  type        = string
  default     = "10.0.0.0/16"
}

variable "pods_cidr" {
  description = "Secondary range for pod IPs (VPC-native cluster)."
  type        = string
  default     = "10.64.0.0/14"
}

variable "services_cidr" {
  description = "Secondary range for Service IPs."
  type        = string
  default     = "10.68.0.0/20"
}

variable "nat" {
  description = "`none` gives private nodes no internet egress; `single` and `per_az` both create one regional Cloud NAT (it spans the region's zones)."
  type        = string
  default     = "single"

  validation {
    condition     = contains(["single", "per_az", "none"], var.nat)
    error_message = "nat must be one of: single, per_az, none."
  }
}
