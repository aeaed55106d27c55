variable "cluster_name" {
  description = "Name of the EKS cluster, with Auto Mode's compute_config enabled (the eks module's `auto_mode`)."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
