variable "cluster_name" {
  description = "Name of the EKS cluster whose nodes Karpenter launches; also the interruption queue's name and the discovery tag's value."
  type        = string
}

variable "oidc_provider_arn" {
  description = "ARN of the cluster's IAM OIDC provider, which the controller's IRSA role trusts."
  type        = string
}

variable "namespace" {
  description = "Kubernetes namespace of the Karpenter controller (the Helm release in the add-ons stack)."
  type        = string
  default     = "kube-system"
}

variable "service_account" {
  description = "Kubernetes service account of the Karpenter controller."
  type        = string
  default     = "karpenter"
}

variable "create_controller_iam_role" {
  description = "Create the controller's IRSA role with the policies Karpenter publishes for its pinned version."
  type        = bool
  default     = true
}

variable "create_node_iam_role" {
  description = "Create the IAM role of the nodes Karpenter launches (the EC2NodeClasses name it)."
  type        = bool
  default     = true
}

variable "create_access_entry" {
  description = "Create the EKS access entry that lets nodes with the node role join the cluster."
  type        = bool
  default     = true
}

variable "enable_interruption_handling" {
  description = "Create the SQS queue and EventBridge rules through which Karpenter learns of spot interruptions, rebalance recommendations, scheduled maintenance and instance state changes, and drains nodes ahead of them."
  type        = bool
  default     = true
}

variable "discovery_subnet_ids" {
  description = "Subnets to tag `karpenter.sh/discovery = <cluster_name>`; the EC2NodeClasses launch nodes in subnets with that tag. Only subnets this configuration does not manage: an aws_subnet here sets the tag in its own tags."
  type        = list(string)
  default     = []
}

variable "discovery_security_group_ids" {
  description = "Security groups to tag `karpenter.sh/discovery = <cluster_name>` (the cluster security group); the EC2NodeClasses attach them to nodes."
  type        = list(string)
  default     = []
}

variable "queue_message_retention_seconds" {
  description = "Seconds an interruption message stays in the queue; Karpenter's own CloudFormation uses 300, as an older event is no use."
  type        = number
  default     = 300
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
