locals {
  # A multi-host TPU slice is created, repaired and removed as a whole: it scales between zero and all
  # of its VMs, never in between.
  multi_host = var.tpu_topology != null
}

resource "google_container_node_pool" "this" {
  # A change GKE cannot make in place (machine type, disk, spot, accelerators) replaces the pool. The
  # name is a prefix plus a unique suffix the provider adds, so the new pool can exist beside the old
  # one: it is created first, then the old pool is drained and deleted (create_before_destroy below).
  # GKE allows 40 characters; the provider's suffix takes 26 of them.
  name_prefix    = "${substr(var.name, 0, 13)}-"
  project        = var.project_id
  cluster        = var.cluster
  location       = var.location
  node_locations = length(var.node_locations) > 0 ? var.node_locations : null

  initial_node_count = var.min_nodes

  # A multi-host slice autoscales as one unit, as in GKE's TPU guide: max_node_count is the slice's VM
  # count (per zone, and the slice's pool has exactly one zone), and location policy ANY lets the
  # autoscaler create the whole slice where capacity is, and remove it whole when idle.
  autoscaling {
    min_node_count  = var.min_nodes
    max_node_count  = local.multi_host ? var.slice_nodes : var.max_nodes
    location_policy = local.multi_host ? "ANY" : null
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

        # GPU sharing: GKE offers each GPU as max_shared_clients_per_gpu devices and labels the nodes
        # (cloud.google.com/gke-gpu-sharing-strategy, gke-max-shared-clients-per-gpu), which the APIs'
        # pods select.
        dynamic "gpu_sharing_config" {
          for_each = guest_accelerator.value.sharing == null ? [] : [guest_accelerator.value.sharing]

          content {
            gpu_sharing_strategy       = gpu_sharing_config.value.strategy
            max_shared_clients_per_gpu = gpu_sharing_config.value.max_shared_clients_per_gpu
          }
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

    # Image streaming: the first start of a large image on a new node (the cold start of a pool
    # scaled from zero) reads only the files it opens, then caches the rest in the background.
    gcfs_config {
      enabled = var.image_streaming
    }

    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }
  }

  lifecycle {
    ignore_changes        = [initial_node_count]
    create_before_destroy = true
  }
}
