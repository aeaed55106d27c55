variable "name" {
  description = "Name prefix of every resource in this module; also the EKS cluster name the subnets are tagged for."
  type        = string
}

variable "cidr" {
  description = "IPv4 CIDR block of the VPC. Public subnets take the first /20s of it, private subnets the /18s after them."
  type        = string
  default     = "10.0.0.0/16"
}

variable "azs" {
  description = "Availability zones to spread the subnets over: one public and one private subnet per zone. EKS needs at least two."
  type        = list(string)

  validation {
    condition     = length(var.azs) >= 2
    error_message = "EKS needs subnets in at least two availability zones."
  }
}

variable "nat" {
  description = "NAT for the private subnets: `single` (one gateway, cheapest), `per_az` (one per zone, survives a zone outage) or `none` (no egress to the internet)."
  type        = string
  default     = "single"

  validation {
    condition     = contains(["single", "per_az", "none"], var.nat)
    error_message = "nat must be one of: single, per_az, none."
  }
}

variable "enable_flow_log" {
  description = "Send VPC flow logs (rejected and accepted traffic) to a CloudWatch log group."
  type        = bool
  default     = true
}

variable "flow_log_retention_days" {
  description = "Days to keep VPC flow logs."
  type        = number
  default     = 365
}

variable "private_subnet_tags" {
  description = "Extra tags on the private subnets only, such as Karpenter's discovery tag."
  type        = map(string)
  default     = {}
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
