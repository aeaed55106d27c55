output "node_iam_role_name" {
  description = "Name of the nodes' IAM role; the EC2NodeClasses' `role`."
  value       = try(aws_iam_role.node[0].name, null)
}

output "node_iam_role_arn" {
  description = "ARN of the nodes' IAM role."
  value       = try(aws_iam_role.node[0].arn, null)
}

output "controller_iam_role_arn" {
  description = "ARN of the controller's IRSA role; the Helm release annotates the controller's service account with it."
  value       = try(aws_iam_role.controller[0].arn, null)
}

output "queue_name" {
  description = "Name of the interruption queue; the chart's `settings.interruptionQueue`."
  value       = try(aws_sqs_queue.this[0].name, null)
}

output "discovery_tag" {
  description = "The tag by which the EC2NodeClasses select subnets and security groups."
  value       = { "karpenter.sh/discovery" = var.cluster_name }
}
