variable "name" {
  description = "Name of the node group, unique within the cluster. EKS names the group <name>-<26-character suffix>, so that a replacement can be created before the old group is deleted."
  type        = string

  validation {
    # EKS node group names are at most 63 characters; the provider appends 26 to the prefix "<name>-".
    condition     = can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", var.name)) && length(var.name) <= 36
    error_message = "name must be a DNS label of at most 36 characters (EKS appends a 27-character suffix to it)."
  }
}

variable "cluster_name" {
  description = "Name of the EKS cluster the nodes join."
  type        = string
}

variable "kubernetes_version" {
  description = "Kubernetes version of the nodes; keep it equal to the control plane's."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets the nodes are launched in (the private subnets)."
  type        = list(string)
}

variable "instance_types" {
  description = "EC2 instance types of the nodes. With spot capacity, more than one type raises the chance of getting capacity."
  type        = list(string)
}

variable "ami_type" {
  description = "EKS AMI type: AL2023_x86_64_STANDARD for CPU, AL2023_x86_64_NVIDIA for NVIDIA GPUs, AL2023_x86_64_NEURON for Inferentia and Trainium."
  type        = string
  default     = "AL2023_x86_64_STANDARD"
}

variable "capacity_type" {
  description = "ON_DEMAND or SPOT."
  type        = string
  default     = "ON_DEMAND"

  validation {
    condition     = contains(["ON_DEMAND", "SPOT"], var.capacity_type)
    error_message = "capacity_type must be ON_DEMAND or SPOT."
  }
}

variable "min_size" {
  description = "Fewest nodes the group scales down to (0 lets an accelerator pool cost nothing while idle)."
  type        = number
  default     = 0
}

variable "max_size" {
  description = "Most nodes the group scales up to."
  type        = number
}

variable "desired_size" {
  description = "Nodes at creation. Later changes are left to the cluster autoscaler (see lifecycle below)."
  type        = number
}

variable "disk_size" {
  description = "Root volume size of each node in GiB; accelerator images are large, so leave room."
  type        = number
  default     = 100
}

variable "labels" {
  description = "Kubernetes labels on every node; the rendered manifests select pools by them."
  type        = map(string)
  default     = {}
}

variable "taints" {
  description = "Kubernetes taints on every node, so that only pods tolerating them (accelerator workloads) land there."
  type = list(object({
    key    = string
    value  = optional(string)
    effect = string
  }))
  default = []
}

variable "autoscaler_tags" {
  description = "Tags on the node group that the cluster autoscaler reads through DescribeNodegroup when the group is at zero: `k8s.io/cluster-autoscaler/node-template/resources/<resource>` for resources its instance table lacks (Neuron cores). Labels and taints it reads from the group itself."
  type        = map(string)
  default     = {}
}

variable "max_unavailable_percentage" {
  description = "Share of nodes replaced at once during a node group update."
  type        = number
  default     = 33
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
