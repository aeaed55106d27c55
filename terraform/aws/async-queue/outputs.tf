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

output "front_policy_json" {
  description = "The front's permissions: send to this queue, get and put under the results prefix."
  value       = data.aws_iam_policy_document.front.json
}

output "worker_policy_json" {
  description = "The workers' permissions: receive, extend and delete on this queue, send to its dead-letter queue, get and put under the results prefix, read their model."
  value       = data.aws_iam_policy_document.worker.json
}

output "depth_policy_json" {
  description = "Read the queue's depth, for the autoscaler."
  value       = data.aws_iam_policy_document.depth.json
}
