################################################################################
# Node service account: only what nodes need (logs, metrics, pulling images)
################################################################################

resource "google_service_account" "nodes" {
  project      = var.project_id
  account_id   = "${var.name}-nodes"
  display_name = "GKE nodes of ${var.name}"
}

resource "google_project_iam_member" "nodes" {
  # Image streaming reads images through the Container File System API, which a custom node
  # service account may call only as a Service Usage Consumer (GKE's image streaming requirements).
  for_each = toset(concat([
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/monitoring.viewer",
    "roles/stackdriver.resourceMetadata.writer",
    "roles/artifactregistry.reader",
  ], var.image_streaming ? ["roles/serviceusage.serviceUsageConsumer"] : []))

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.nodes.email}"
}

################################################################################
# Cluster
################################################################################

resource "google_container_cluster" "this" {
  #checkov:skip=CKV_GCP_66:Binary Authorization needs signed images and an attestor the platform team runs; enable it here when you have one.
  #checkov:skip=CKV_GCP_21:Labels are set: resource_labels from the root's merged labels plus the provider's default_labels; checkov cannot evaluate merge().
  #checkov:skip=CKV_GCP_12:Dataplane V2 (ADVANCED_DATAPATH) enforces NetworkPolicy itself; the legacy network_policy block must stay off.
  #checkov:skip=CKV_GCP_65:Google Groups for RBAC needs a Workspace domain the project may not have.
  name            = var.name
  project         = var.project_id
  location        = var.location
  resource_labels = var.labels

  min_master_version  = var.kubernetes_version
  deletion_protection = var.deletion_protection

  # Node pools are separate resources; the default pool only exists while the cluster is created.
  remove_default_node_pool = true
  initial_node_count       = 1

  network           = var.network
  subnetwork        = var.subnetwork
  networking_mode   = "VPC_NATIVE"
  datapath_provider = "ADVANCED_DATAPATH" # Dataplane V2: NetworkPolicy enforced by eBPF

  ip_allocation_policy {
    cluster_secondary_range_name  = var.pods_range_name
    services_secondary_range_name = var.services_range_name
  }

  release_channel {
    channel = var.release_channel
  }

  workload_identity_config {
    workload_pool = "${var.project_id}.svc.id.goog"
  }

  # Cloud Storage FUSE CSI driver: pods mount model prefixes read-only (model_access: mount), reading
  # as their Workload Identity, the serving account that may read the model bucket.
  addons_config {
    gcs_fuse_csi_driver_config {
      enabled = var.gcs_fuse_csi_driver
    }
  }

  private_cluster_config {
    enable_private_nodes    = true
    enable_private_endpoint = !var.endpoint_public_access
    master_ipv4_cidr_block  = var.master_cidr
  }

  master_authorized_networks_config {
    dynamic "cidr_blocks" {
      for_each = var.public_access_cidrs

      content {
        cidr_block   = cidr_blocks.value
        display_name = "allowed-${cidr_blocks.key}"
      }
    }
  }

  master_auth {
    client_certificate_config {
      issue_client_certificate = false
    }
  }

  enable_shielded_nodes       = true
  enable_intranode_visibility = true

  logging_config {
    enable_components = ["SYSTEM_COMPONENTS", "WORKLOADS"]
  }

  monitoring_config {
    enable_components = ["SYSTEM_COMPONENTS"]

    managed_prometheus {
      enabled = true
    }
  }

  node_config {
    service_account = google_service_account.nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]

    workload_metadata_config {
      mode = "GKE_METADATA"
    }

    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }
  }

  lifecycle {
    ignore_changes = [node_config]
  }
}

################################################################################
# Control plane to nodes: the ports GKE's own private-cluster rule leaves closed
################################################################################

# GKE opens only 443 and 10250 from the control plane to private nodes. The API server also has to
# reach KEDA's metrics server (6443; without it the HPA that KEDA creates gets no metric and never
# scales past one replica, kedacore/charts#214) and admission webhooks (9443). Only the nodes that
# run as this cluster's node service account are targeted.
resource "google_compute_firewall" "control_plane_to_webhooks" {
  name        = "${var.name}-control-plane-webhooks"
  project     = var.project_id
  network     = var.network
  description = "GKE control plane of ${var.name} to the KEDA metrics server (6443) and admission webhooks (9443) on its nodes"
  direction   = "INGRESS"
  priority    = 1000

  source_ranges           = [var.master_cidr]
  target_service_accounts = [google_service_account.nodes.email]

  allow {
    protocol = "tcp"
    ports    = ["6443", "9443"]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}
