data "aws_partition" "current" {}

data "aws_iam_policy_document" "assume_ec2" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

# One role per node group, with only what a node needs: join the cluster, run the VPC CNI, pull images.
resource "aws_iam_role" "this" {
  name               = "${var.cluster_name}-${var.name}-node"
  assume_role_policy = data.aws_iam_policy_document.assume_ec2.json

  tags = var.tags
}

resource "aws_iam_role_policy_attachment" "this" {
  for_each = toset([
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryReadOnly",
  ])

  role       = aws_iam_role.this.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/${each.value}"
}

# Changing the instance types, AMI type, disk size or capacity type replaces the group. With a name
# prefix (the provider appends a unique suffix) the new group can exist beside the old one, so Terraform
# creates it first and only then deletes the old group. EKS drains each old node before terminating it
# (evictions honour PodDisruptionBudgets; after 5 minutes it terminates anyway), and evicted pods land on
# the new group, which the cluster autoscaler grows from min_size. terraform-aws-eks does the same.
resource "aws_eks_node_group" "this" {
  cluster_name           = var.cluster_name
  node_group_name_prefix = "${var.name}-"
  node_role_arn          = aws_iam_role.this.arn
  subnet_ids             = var.subnet_ids
  version                = var.kubernetes_version

  instance_types = var.instance_types
  ami_type       = var.ami_type
  capacity_type  = var.capacity_type
  disk_size      = var.disk_size
  labels         = var.labels

  scaling_config {
    min_size     = var.min_size
    max_size     = var.max_size
    desired_size = var.desired_size
  }

  update_config {
    max_unavailable_percentage = var.max_unavailable_percentage
  }

  dynamic "taint" {
    for_each = var.taints

    content {
      key    = taint.value.key
      value  = taint.value.value
      effect = taint.value.effect
    }
  }

  tags = merge(var.tags, var.autoscaler_tags, { Name = "${var.cluster_name}-${var.name}" })

  lifecycle {
    create_before_destroy = true
    # The cluster autoscaler owns the node count once the group exists.
    ignore_changes = [scaling_config[0].desired_size]
  }

  depends_on = [aws_iam_role_policy_attachment.this]
}
