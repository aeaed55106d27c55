output "node_role_name" {
  description = "Name of the node role; mlkit's NodeClasses name it in `spec.role`."
  value       = aws_iam_role.node.name
}

output "node_role_arn" {
  description = "ARN of the node role."
  value       = aws_iam_role.node.arn
}
