variable "name" {
  description = "Name of the node pool, unique within the cluster."
  type        = string
}

variable "project_id" {
  description = "GCP project ID."
  type        = string
}

variable "cluster" {
  description = "Name of the GKE cluster."
  type        = string
}

variable "location" {
  description = "Location (region or zone) of the cluster."
  type        = string
}

variable "node_locations" {
  description = "Zones for the nodes; empty means the cluster's zones. TPU pools need a zone that offers the TPU."
  type        = list(string)
  default     = []
}

variable "machine_type" {
  description = "GCE machine type, e.g. n2-standard-4, g2-standard-8 (1 L4), ct5lp-hightpu-8t (TPU v5e, 8 chips)."
  type        = string
}

variable "min_nodes" {
  description = "Fewest nodes per zone the autoscaler keeps (ignored for multi-host TPU slices)."
  type        = number
  default     = 0
}

variable "max_nodes" {
  description = "Most nodes per zone the autoscaler may run (ignored for multi-host TPU slices)."
  type        = number
}

variable "spot" {
  description = "Run on Spot VMs: much cheaper, preempted with about 30 seconds' notice."
  type        = bool
  default     = false
}

variable "disk_size_gb" {
  description = "Boot disk per node in GB."
  type        = number
  default     = 100
}

variable "disk_type" {
  description = "Boot disk type: pd-balanced, pd-ssd or pd-standard (hyperdisk-balanced on machine types that need it)."
  type        = string
  default     = "pd-balanced"
}

variable "service_account" {
  description = "Email of the service account the nodes run as."
  type        = string
}

variable "labels" {
  description = "Kubernetes labels on every node; the rendered manifests select pools by them."
  type        = map(string)
  default     = {}
}

variable "taints" {
  description = "Kubernetes taints on every node. GKE adds the GPU and TPU taints itself."
  type = list(object({
    key    = string
    value  = string
    effect = string
  }))
  default = []
}

variable "gpu" {
  description = "GPUs attached to each node (`type`, `count`), with the driver GKE installs; null for none. A2, A3 and G2 types need it too: their GPUs are declared here."
  type = object({
    type  = string
    count = number
  })
  default = null
}

variable "tpu_topology" {
  description = "TPU slice topology, e.g. 4x4, for a multi-host slice: the pool gets a COMPACT placement policy and exactly `slice_nodes` nodes. Null for single-host and non-TPU pools."
  type        = string
  default     = null
}

variable "slice_nodes" {
  description = "VMs in one multi-host TPU slice (chips of the topology divided by chips per VM)."
  type        = number
  default     = 1
}
