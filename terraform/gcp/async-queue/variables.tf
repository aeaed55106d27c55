variable "name" {
  description = "Name of the topic and its pull subscription; the dead-letter topic and its subscription are named after it."
  type        = string
}

variable "project_id" {
  description = "GCP project ID."
  type        = string
}

variable "ack_deadline_s" {
  description = "Seconds one delivery holds a message before Pub/Sub hands it to another worker (the API's queue.visibility_timeout_s)."
  type        = number

  validation {
    condition     = var.ack_deadline_s >= 10 && var.ack_deadline_s <= 600
    error_message = "Pub/Sub takes an ack deadline of 10 to 600 seconds."
  }
}

variable "max_attempts" {
  description = "Deliveries of one message before Pub/Sub moves it to the dead-letter topic (max_delivery_attempts)."
  type        = number

  validation {
    condition     = var.max_attempts >= 5 && var.max_attempts <= 100
    error_message = "Pub/Sub takes max_delivery_attempts of 5 to 100."
  }
}

variable "result_retention_days" {
  description = "Days results are kept; unacked messages are kept as long, up to Pub/Sub's 31 days."
  type        = number
}

variable "bucket" {
  description = "Name of the bucket that holds the API's results and large payloads."
  type        = string
}

variable "results_prefix" {
  description = "Prefix of the API's results in the bucket, without slashes at either end."
  type        = string
}

variable "front_member" {
  description = "IAM member of the API's front pods (serviceAccount:EMAIL of its Google service account)."
  type        = string
}

variable "worker_member" {
  description = "IAM member of the API's worker pods (serviceAccount:EMAIL of the workers' Google service account)."
  type        = string
}

variable "labels" {
  description = "Labels added to the topics and subscriptions."
  type        = map(string)
  default     = {}
}
