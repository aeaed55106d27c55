output "bucket_name" {
  description = "Name of the model bucket."
  value       = aws_s3_bucket.this.id
}

output "bucket_arn" {
  description = "ARN of the model bucket."
  value       = aws_s3_bucket.this.arn
}

output "read_policy_arn" {
  description = "ARN of the IAM policy that grants read-only access to the models; attach it to serving roles."
  value       = aws_iam_policy.read.arn
}
