output "node_group_name" {
  description = "Name of the node group."
  value       = aws_eks_node_group.this.node_group_name
}

output "node_group_arn" {
  description = "ARN of the node group."
  value       = aws_eks_node_group.this.arn
}

output "iam_role_arn" {
  description = "ARN of the IAM role the nodes run as."
  value       = aws_iam_role.this.arn
}

output "labels" {
  description = "Kubernetes labels set on the nodes."
  value       = var.labels
}
