resource "aws_s3_bucket" "this" {
  bucket        = var.name
  force_destroy = var.force_destroy
  #checkov:skip=CKV_AWS_18:Access logging needs a separate log bucket the platform team owns; add it here when you have one.
  #checkov:skip=CKV_AWS_144:Cross-region replication doubles storage cost; models can be re-uploaded from their source.
  #checkov:skip=CKV2_AWS_62:Nothing consumes bucket events; models are read by the serving pods on start.

  tags = var.tags
}

resource "aws_s3_bucket_ownership_controls" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket = aws_s3_bucket.this.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "this" {
  bucket = aws_s3_bucket.this.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "aws:kms"
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    id     = "expire-old-versions"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_expiry_days
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  # Async APIs' results and large payloads: deleted after their retention, their replaced versions a day
  # later (S3 applies the shorter expiry where this rule and the one above overlap).
  dynamic "rule" {
    for_each = var.expiring_prefixes

    content {
      id     = "expire-${rule.key}"
      status = "Enabled"

      filter {
        prefix = "${rule.key}/"
      }

      expiration {
        days = rule.value
      }

      noncurrent_version_expiration {
        noncurrent_days = 1
      }
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

data "aws_iam_policy_document" "tls_only" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.this.arn, "${aws_s3_bucket.this.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  bucket = aws_s3_bucket.this.id
  policy = data.aws_iam_policy_document.tls_only.json

  depends_on = [aws_s3_bucket_public_access_block.this]
}

# Serving pods get this policy through their IRSA role: read models, nothing else.
data "aws_iam_policy_document" "read" {
  statement {
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = ["${aws_s3_bucket.this.arn}/*"]
  }

  statement {
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.this.arn]
  }

  # Objects that are not models (async APIs' payloads and results): an explicit deny, so that no role this
  # policy is attached to reads them whatever else it is allowed.
  dynamic "statement" {
    for_each = length(var.private_prefixes) > 0 ? [1] : []
    content {
      sid       = "NotModels"
      effect    = "Deny"
      actions   = ["s3:GetObject", "s3:GetObjectVersion"]
      resources = [for prefix in var.private_prefixes : "${aws_s3_bucket.this.arn}/${prefix}*"]
    }
  }
}

resource "aws_iam_policy" "read" {
  name        = "${var.name}-read"
  description = "Read-only access to the models in ${var.name}"
  policy      = data.aws_iam_policy_document.read.json

  tags = var.tags
}
