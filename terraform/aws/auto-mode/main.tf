data "aws_partition" "current" {}

################################################################################
# Node role: what the nodes EKS Auto Mode launches for mlkit's NodeClasses run as
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
  name               = "${var.cluster_name}-auto-node"
  description        = "Nodes that EKS Auto Mode launches for cluster ${var.cluster_name}"
  assume_role_policy = data.aws_iam_policy_document.assume_ec2.json

  tags = var.tags
}

# The two managed policies AWS documents for an Auto Mode node role (EKS User Guide, "Learn about
# identity and access in EKS Auto Mode", Node IAM role); CNI and SSM are Auto Mode's own business.
resource "aws_iam_role_policy_attachment" "node" {
  for_each = toset([
    "AmazonEKSWorkerNodeMinimalPolicy",
    "AmazonEC2ContainerRegistryPullOnly",
  ])

  role       = aws_iam_role.node.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/${each.value}"
}

# EKS makes this entry itself only for the role in the cluster's compute_config, which must stay empty while
# the built-in node pools are off (the API refuses a node role without them). A NodeClass naming another
# role needs an EC2 entry with the AmazonEKSAutoNodePolicy access policy ("Create a Node Class").
resource "aws_eks_access_entry" "node" {
  cluster_name  = var.cluster_name
  principal_arn = aws_iam_role.node.arn
  type          = "EC2"

  tags = var.tags
}

resource "aws_eks_access_policy_association" "node" {
  cluster_name  = var.cluster_name
  principal_arn = aws_iam_role.node.arn
  policy_arn    = "arn:${data.aws_partition.current.partition}:eks::aws:cluster-access-policy/AmazonEKSAutoNodePolicy"

  access_scope {
    type = "cluster"
  }

  depends_on = [aws_eks_access_entry.node]
}
