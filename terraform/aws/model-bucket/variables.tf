variable "name" {
  description = "Name of the S3 bucket that holds model artifacts; globally unique."
  type        = string
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete the bucket while it still holds objects."
  type        = bool
  default     = false
}

variable "noncurrent_version_expiry_days" {
  description = "Days after which replaced model versions are deleted; versioning keeps them for rollback until then."
  type        = number
  default     = 90
}

variable "expiring_prefixes" {
  description = "Prefixes (without slashes at either end) whose objects are deleted after the given days: async APIs' results."
  type        = map(number)
  default     = {}
}

variable "private_prefixes" {
  description = "Key prefixes (ending in a slash) that hold no models: the read policy denies reading them (async APIs' payloads and results)."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
