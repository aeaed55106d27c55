# The queue of one async API (runtime/asyncq/aws.py): the front sends each request's id and payload
# (or where the payload is, for a large one), workers receive, extend the visibility while they predict,
# then delete. SQS moves a message that was received max_attempts times without being deleted to the
# dead-letter queue (maxReceiveCount), so a request that kills every worker still ends there.

resource "aws_sqs_queue" "dead_letter" {
  name                      = "${var.name}-dead-letter"
  message_retention_seconds = local.retention_s
  sqs_managed_sse_enabled   = true

  tags = var.tags
}

resource "aws_sqs_queue" "this" {
  name                       = var.name
  visibility_timeout_seconds = var.visibility_timeout_s
  message_retention_seconds  = local.retention_s
  receive_wait_time_seconds  = 20 # long polling: an idle worker's receive waits instead of spinning
  sqs_managed_sse_enabled    = true

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letter.arn
    maxReceiveCount     = var.max_attempts
  })

  tags = var.tags
}

# Only this API's queue may send its failures here: the dead-letter queue is not a second inbox that another
# queue in the account could redrive into.
resource "aws_sqs_queue_redrive_allow_policy" "dead_letter" {
  queue_url = aws_sqs_queue.dead_letter.id

  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.this.arn]
  })
}

locals {
  # SQS keeps a message at most 14 days; a request queued longer than its result is kept is not worth running.
  retention_s = min(var.result_retention_days * 86400, 1209600)
  results_arn = "${var.bucket_arn}/${var.results_prefix}/*"
}

data "aws_iam_policy_document" "deny_http" {
  for_each = { queue = aws_sqs_queue.this.arn, dead_letter = aws_sqs_queue.dead_letter.arn }

  statement {
    sid       = "DenyHTTP"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [each.value]

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

resource "aws_sqs_queue_policy" "this" {
  for_each = { queue = aws_sqs_queue.this.id, dead_letter = aws_sqs_queue.dead_letter.id }

  queue_url = each.value
  policy    = data.aws_iam_policy_document.deny_http[each.key].json
}

# Two identities per API, each with what its code path calls (runtime/asyncq), and nothing more.
# The front (front.py `_enqueue`, `status`): puts a large payload and the `queued` record under the results
# prefix, sends the request (SqsQueue.send: SendMessage, to the URL it is given, so no GetQueueUrl), and
# gets records for GET /predict/{id}. It never receives, deletes or touches the dead-letter queue.
data "aws_iam_policy_document" "front" {
  statement {
    sid       = "Enqueue"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.this.arn]
  }

  statement {
    sid       = "Records"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = [local.results_arn]
  }
}

# The worker (worker.py): receives (ReceiveMessage), extends and releases (ChangeMessageVisibilityBatch,
# authorised as sqs:ChangeMessageVisibility), deletes (DeleteMessageBatch, as sqs:DeleteMessage), gets a
# large payload and puts `running` and final records, and dead-letters a request that failed its last
# attempt (SqsQueue.dead_letter sends it to the dead-letter queue itself, with the predictor's error
# recorded, before SQS's own redrive would). It never sends to its own queue: nothing is re-enqueued, a
# failed attempt is released for SQS to deliver again.
data "aws_iam_policy_document" "worker" {
  statement {
    sid = "Consume"
    actions = [
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
    ]
    resources = [aws_sqs_queue.this.arn]
  }

  statement {
    sid       = "DeadLetter"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dead_letter.arn]
  }

  statement {
    sid       = "Results"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = [local.results_arn]
  }

  # Its own model and nothing else of the bucket: the bucket-wide read the other APIs' roles attach would let
  # it read every other async API's payloads and results (their ids are the only secret). `aws s3 sync`
  # lists the model's prefix, then gets each object.
  dynamic "statement" {
    for_each = var.model_read
    content {
      sid       = "Model"
      actions   = ["s3:GetObject", "s3:GetObjectVersion"]
      resources = ["${statement.value.bucket_arn}/${statement.value.prefix}*"]
    }
  }

  dynamic "statement" {
    for_each = var.model_read
    content {
      sid       = "ModelListing"
      actions   = ["s3:ListBucket"]
      resources = [statement.value.bucket_arn]

      condition {
        test     = "StringLike"
        variable = "s3:prefix"
        values   = ["${statement.value.prefix}*"]
      }
    }
  }
}

# What KEDA's aws-sqs-queue scaler reads: the queue's approximate message counts.
data "aws_iam_policy_document" "depth" {
  statement {
    sid       = "QueueDepth"
    actions   = ["sqs:GetQueueAttributes"]
    resources = [aws_sqs_queue.this.arn]
  }
}
