data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name
  account_id = data.aws_caller_identity.current.account_id
  cluster    = "arn:${local.partition}:eks:${local.region}:${local.account_id}:cluster/${var.cluster_name}"
  # Karpenter tags what it launches with these, and the controller policy lets it act only on what carries them.
  owned = "kubernetes.io/cluster/${var.cluster_name}"
}

################################################################################
# Node role: what the nodes Karpenter launches run as (the EC2NodeClasses name it)
################################################################################

data "aws_iam_policy_document" "assume_ec2" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "node" {
  count = var.create_node_iam_role ? 1 : 0

  name               = "${var.cluster_name}-karpenter-node"
  description        = "Nodes that Karpenter launches for EKS cluster ${var.cluster_name}"
  assume_role_policy = data.aws_iam_policy_document.assume_ec2.json

  tags = var.tags
}

# The managed policies of Karpenter's own node role (its getting-started CloudFormation, KarpenterNodeRole).
resource "aws_iam_role_policy_attachment" "node" {
  for_each = var.create_node_iam_role ? toset([
    "AmazonEKS_CNI_Policy",
    "AmazonEKSWorkerNodePolicy",
    "AmazonEC2ContainerRegistryPullOnly",
    "AmazonSSMManagedInstanceCore",
  ]) : toset([])

  role       = aws_iam_role.node[0].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/${each.value}"
}

# Nodes join through an access entry (the cluster's authentication mode includes API), not the aws-auth ConfigMap.
resource "aws_eks_access_entry" "node" {
  count = var.create_node_iam_role && var.create_access_entry ? 1 : 0

  cluster_name  = var.cluster_name
  principal_arn = aws_iam_role.node[0].arn
  type          = "EC2_LINUX"

  tags = var.tags
}

################################################################################
# Interruption handling: EC2 and AWS Health events to a queue the controller reads
################################################################################

resource "aws_sqs_queue" "this" {
  count = var.enable_interruption_handling ? 1 : 0

  name                      = var.cluster_name
  message_retention_seconds = var.queue_message_retention_seconds
  sqs_managed_sse_enabled   = true

  tags = var.tags
}

data "aws_iam_policy_document" "queue" {
  count = var.enable_interruption_handling ? 1 : 0

  statement {
    sid       = "EC2InterruptionPolicy"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.this[0].arn]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com", "sqs.amazonaws.com"]
    }
  }

  statement {
    sid       = "DenyHTTP"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [aws_sqs_queue.this[0].arn]

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
  count = var.enable_interruption_handling ? 1 : 0

  queue_url = aws_sqs_queue.this[0].url
  policy    = data.aws_iam_policy_document.queue[0].json
}

locals {
  # The five rules of Karpenter's CloudFormation, by the events' source and detail-type.
  interruption_events = {
    scheduled_change      = { source = "aws.health", detail_type = "AWS Health Event" }
    spot_interruption     = { source = "aws.ec2", detail_type = "EC2 Spot Instance Interruption Warning" }
    rebalance             = { source = "aws.ec2", detail_type = "EC2 Instance Rebalance Recommendation" }
    instance_state_change = { source = "aws.ec2", detail_type = "EC2 Instance State-change Notification" }
    capacity_reservation  = { source = "aws.ec2", detail_type = "EC2 Capacity Reservation Instance Interruption Warning" }
  }
}

resource "aws_cloudwatch_event_rule" "this" {
  for_each = var.enable_interruption_handling ? local.interruption_events : {}

  name          = "${var.cluster_name}-karpenter-${replace(each.key, "_", "-")}"
  description   = "${each.value.detail_type} events for Karpenter of EKS cluster ${var.cluster_name}"
  event_pattern = jsonencode({ source = [each.value.source], "detail-type" = [each.value.detail_type] })

  tags = var.tags
}

resource "aws_cloudwatch_event_target" "this" {
  for_each = var.enable_interruption_handling ? local.interruption_events : {}

  rule      = aws_cloudwatch_event_rule.this[each.key].name
  target_id = "KarpenterInterruptionQueueTarget"
  arn       = aws_sqs_queue.this[0].arn
}

################################################################################
# Discovery: the EC2NodeClasses select subnets and security groups by this tag
################################################################################

resource "aws_ec2_tag" "subnet" {
  count = length(var.discovery_subnet_ids)

  resource_id = var.discovery_subnet_ids[count.index]
  key         = "karpenter.sh/discovery"
  value       = var.cluster_name
}

resource "aws_ec2_tag" "security_group" {
  count = length(var.discovery_security_group_ids)

  resource_id = var.discovery_security_group_ids[count.index]
  key         = "karpenter.sh/discovery"
  value       = var.cluster_name
}
