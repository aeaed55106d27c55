variable "name" {
  description = "Repository ID for the project's predictor images."
  type        = string
}

variable "project_id" {
  description = "GCP project ID."
  type        = string
}

variable "location" {
  description = "Region of the repository; the cluster's region keeps pulls local."
  type        = string
}

variable "untagged_image_expiry_days" {
  description = "Days after which untagged images are deleted."
  type        = number
  default     = 14
}
