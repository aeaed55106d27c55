output "queue_url" {
  description = "URL of the queue, for the runtime's MLKIT_QUEUE (sqs:URL) and KEDA's trigger."
  value       = aws_sqs_queue.this.id
}

output "queue_arn" {
  description = "ARN of the queue."
  value       = aws_sqs_queue.this.arn
}

output "dead_letter_url" {
  description = "URL of the dead-letter queue, for the runtime's MLKIT_DEAD_LETTER."
  value       = aws_sqs_queue.dead_letter.id
}

output "api_policy_json" {
  description = "The API pods' permissions on this queue and their results prefix."
  value       = data.aws_iam_policy_document.api.json
}

output "depth_policy_json" {
  description = "Read the queue's depth, for the autoscaler."
  value       = data.aws_iam_policy_document.depth.json
}
