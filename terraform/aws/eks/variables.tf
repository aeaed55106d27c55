variable "name" {
  description = "Name of the EKS cluster; prefix of the module's other resources."
  type        = string
}

variable "kubernetes_version" {
  description = "Kubernetes minor version of the control plane, such as \"1.35\"."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets for the control plane's network interfaces, in at least two availability zones (the private subnets)."
  type        = list(string)
}

variable "endpoint_public_access" {
  description = "Whether the Kubernetes API endpoint is reachable from the internet (limited by `public_access_cidrs`)."
  type        = bool
  default     = true
}

variable "endpoint_private_access" {
  description = "Whether the Kubernetes API endpoint is reachable from inside the VPC."
  type        = bool
  default     = true
}

variable "public_access_cidrs" {
  description = "CIDR blocks allowed to reach the public API endpoint."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "enabled_log_types" {
  description = "Control-plane log types sent to CloudWatch: api, audit, authenticator, controllerManager, scheduler."
  type        = list(string)
  default     = ["api", "audit", "authenticator"]
}

variable "log_retention_days" {
  description = "Days to keep control-plane logs."
  type        = number
  default     = 365
}

variable "kms_deletion_window_days" {
  description = "Days before the secrets-encryption key is deleted after `terraform destroy` (7 to 30)."
  type        = number
  default     = 7
}

variable "auto_mode" {
  description = "Turn on EKS Auto Mode (compute, block storage, load balancing) with its built-in node pools off."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
