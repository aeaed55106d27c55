variable "name" {
  description = "Name of the GKE cluster; prefix of the node service account."
  type        = string
}

variable "project_id" {
  description = "GCP project ID."
  type        = string
}

variable "location" {
  description = "A region (regional cluster: control plane in three zones) or a zone (zonal cluster)."
  type        = string
}

variable "kubernetes_version" {
  description = "Minimum Kubernetes version of the control plane, such as \"1.31\"; the release channel upgrades it."
  type        = string
}

variable "release_channel" {
  description = "GKE release channel: RAPID, REGULAR or STABLE."
  type        = string
  default     = "REGULAR"
}

variable "network" {
  description = "Name or ID of the VPC network."
  type        = string
}

variable "subnetwork" {
  description = "Name of the subnetwork, with secondary ranges for pods and Services."
  type        = string
}

variable "pods_range_name" {
  description = "Secondary range of the subnetwork for pod IPs."
  type        = string
  default     = "pods"
}

variable "services_range_name" {
  description = "Secondary range of the subnetwork for Service IPs."
  type        = string
  default     = "services"
}

variable "master_cidr" {
  description = "A /28 for the control plane's private endpoint; must not overlap the network."
  type        = string
  default     = "172.16.0.0/28"
}

variable "endpoint_public_access" {
  description = "Whether the Kubernetes API has a public endpoint (limited by `public_access_cidrs`)."
  type        = bool
  default     = true
}

variable "public_access_cidrs" {
  description = "CIDR blocks allowed to reach the Kubernetes API."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "deletion_protection" {
  description = "Refuse `terraform destroy` of the cluster until this is set to false."
  type        = bool
  default     = false
}

variable "labels" {
  description = "Labels on the cluster."
  type        = map(string)
  default     = {}
}

variable "image_streaming" {
  description = "Whether a node pool uses image streaming: the node service account then gets the Service Usage Consumer role it needs."
  type        = bool
  default     = false
}

variable "gcs_fuse_csi_driver" {
  description = "Enable GKE's Cloud Storage FUSE CSI driver, which mounts bucket prefixes as pod volumes."
  type        = bool
  default     = false
}
