variable "name" {
  description = "Name of the GCS bucket that holds model artifacts; globally unique."
  type        = string
}

variable "reader_account_id" {
  description = "Account ID (the part before @) of the service account that may only read the models; 6 to 30 characters."
  type        = string
}

variable "project_id" {
  description = "GCP project ID."
  type        = string
}

variable "location" {
  description = "Location of the bucket; the cluster's region keeps model downloads local."
  type        = string
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete the bucket while it still holds objects."
  type        = bool
  default     = false
}

variable "expiring_prefixes" {
  description = "Prefixes (without slashes at either end) whose objects are deleted after the given days: async APIs' results."
  type        = map(number)
  default     = {}
}

variable "noncurrent_version_expiry_days" {
  description = "Days after which replaced model versions are deleted."
  type        = number
  default     = 90
}

variable "private_prefixes" {
  description = "Object name prefixes (ending in a slash) that hold no models: the readers' binding leaves them out (async APIs' payloads and results)."
  type        = list(string)
  default     = []
}
