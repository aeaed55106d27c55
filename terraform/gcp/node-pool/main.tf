locals {
  # A multi-host TPU slice is created, repaired and deleted as a whole: a fixed size, no autoscaling.
  multi_host = var.tpu_topology != null
}

resource "google_container_node_pool" "this" {
  name           = var.name
  project        = var.project_id
  cluster        = var.cluster
  location       = var.location
  node_locations = length(var.node_locations) > 0 ? var.node_locations : null

  node_count         = local.multi_host ? var.slice_nodes : null
  initial_node_count = local.multi_host ? null : var.min_nodes

  dynamic "autoscaling" {
    for_each = local.multi_host ? [] : [1]

    content {
      min_node_count = var.min_nodes
      max_node_count = var.max_nodes
    }
  }

  dynamic "placement_policy" {
    for_each = local.multi_host ? [1] : []

    content {
      type         = "COMPACT"
      tpu_topology = var.tpu_topology
    }
  }

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  upgrade_settings {
    max_surge       = 1
    max_unavailable = 0
  }

  node_config {
    machine_type    = var.machine_type
    disk_size_gb    = var.disk_size_gb
    disk_type       = var.disk_type
    spot            = var.spot
    service_account = var.service_account
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]
    labels          = var.labels
    metadata        = { disable-legacy-endpoints = "true" }

    dynamic "guest_accelerator" {
      for_each = var.gpu == null ? [] : [var.gpu]

      content {
        type  = guest_accelerator.value.type
        count = guest_accelerator.value.count

        gpu_driver_installation_config {
          gpu_driver_version = "LATEST"
        }
      }
    }

    dynamic "taint" {
      for_each = var.taints

      content {
        key    = taint.value.key
        value  = taint.value.value
        effect = taint.value.effect
      }
    }

    workload_metadata_config {
      mode = "GKE_METADATA"
    }

    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }
  }

  lifecycle {
    ignore_changes = [initial_node_count]
  }
}
