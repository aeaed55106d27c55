variable "name" {
  description = "Name of the pool in mlkit.yaml: the GKE pool's name starts with its first 13 characters, followed by a unique suffix (pools are replaced create-before-destroy)."
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
  description = "Fewest nodes per zone the autoscaler keeps; for a multi-host TPU slice 0 (idle slices are removed) or its VM count."
  type        = number
  default     = 0
}

variable "max_nodes" {
  description = "Most nodes per zone the autoscaler may run (for a multi-host TPU slice, its VM count is used)."
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
  description = "Boot disk type: pd-balanced, pd-ssd, pd-standard or hyperdisk-balanced. Machine types that take Hyperdisk only (TPU v6e, C4, N4, A3 Ultra, A4, G4, ...) need hyperdisk-balanced; mlkit picks it for them."
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
  description = "GPUs attached to each node (`type`, `count`), with the driver GKE installs; null for none. A2, A3 and G2 types need it too: their GPUs are declared here. `sharing` shares each GPU between containers: `strategy` TIME_SHARING or MPS, `max_shared_clients_per_gpu` 2 to 48."
  type = object({
    type  = string
    count = number
    sharing = optional(object({
      strategy                   = string
      max_shared_clients_per_gpu = number
    }))
  })
  default = null

  validation {
    condition     = try(var.gpu.sharing == null || (contains(["TIME_SHARING", "MPS"], var.gpu.sharing.strategy) && var.gpu.sharing.max_shared_clients_per_gpu >= 2 && var.gpu.sharing.max_shared_clients_per_gpu <= 48), true)
    error_message = "gpu.sharing.strategy must be TIME_SHARING or MPS, and max_shared_clients_per_gpu from 2 to 48."
  }
}

variable "tpu_topology" {
  description = "TPU slice topology, e.g. 4x4, for a multi-host slice: the pool gets a COMPACT placement policy and autoscales between 0 and `slice_nodes` nodes as one unit. Null for single-host and non-TPU pools."
  type        = string
  default     = null
}

variable "slice_nodes" {
  description = "VMs in one multi-host TPU slice (chips of the topology divided by chips per VM)."
  type        = number
  default     = 1
}

variable "image_streaming" {
  description = "GKE image streaming (gcfs): containers start while their image is read on demand from Artifact Registry, instead of after a full pull. Needs the Container File System API enabled."
  type        = bool
  default     = false
}
