variable "name" {
  description = "Name of the queue; the dead-letter queue is named after it."
  type        = string
}

variable "visibility_timeout_s" {
  description = "Seconds one receive hides a message from other workers (the API's queue.visibility_timeout_s)."
  type        = number

  validation {
    condition     = var.visibility_timeout_s >= 0 && var.visibility_timeout_s <= 43200
    error_message = "SQS takes a visibility timeout of 0 to 43200 seconds."
  }
}

variable "max_attempts" {
  description = "Receives of one message before SQS moves it to the dead-letter queue (maxReceiveCount)."
  type        = number

  validation {
    condition     = var.max_attempts >= 1 && var.max_attempts <= 1000
    error_message = "SQS takes a maxReceiveCount of 1 to 1000."
  }
}

variable "result_retention_days" {
  description = "Days results are kept; messages are kept as long, up to SQS's 14 days."
  type        = number
}

variable "bucket_arn" {
  description = "ARN of the bucket that holds the API's results and large payloads."
  type        = string
}

variable "results_prefix" {
  description = "Prefix of the API's results in the bucket, without slashes at either end."
  type        = string
}

variable "model_read" {
  description = "The model the workers load: its bucket's ARN and the key prefix under which its files are (none: the API has no model to fetch)."
  type = list(object({
    bucket_arn = string
    prefix     = string
  }))
  default = []

  validation {
    condition     = length(var.model_read) <= 1
    error_message = "An async API's workers load one model."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
