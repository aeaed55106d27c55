variable "name" {
  description = "Name of the IAM role."
  type        = string
}

variable "description" {
  description = "What the role is for, shown in the IAM console."
  type        = string
  default     = null
}

variable "oidc_provider_arn" {
  description = "ARN of the cluster's IAM OIDC provider."
  type        = string
}

variable "service_accounts" {
  description = "Kubernetes service accounts allowed to assume the role, as `namespace:name`."
  type        = list(string)
}

variable "policy_arns" {
  description = "Managed policies to attach, keyed by a name known before apply."
  type        = map(string)
  default     = {}
}

variable "policy_json" {
  description = "An inline policy document, for permissions no managed policy grants."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags added to the role."
  type        = map(string)
  default     = {}
}
