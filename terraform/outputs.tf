output "cluster_name" {
  description = "Name of the GKE cluster."
  value       = google_container_cluster.fleet.name
}

output "get_credentials" {
  description = "Command that points kubectl and helm at the cluster."
  value       = "gcloud container clusters get-credentials ${google_container_cluster.fleet.name} --location ${var.cluster_location} --project ${var.project_id}"
}

output "bucket_name" {
  description = "Name of the store bucket."
  value       = google_storage_bucket.store.name
}

output "store_url" {
  description = "Store URL for --store / ZKFLEET_STORE and the chart's store.url."
  value       = local.store_url
}

output "store_access_key_id" {
  description = "AWS_ACCESS_KEY_ID of the store (HMAC access ID of the store service account)."
  value       = google_storage_hmac_key.store.access_id
  sensitive   = true
}

output "store_secret_access_key" {
  description = "AWS_SECRET_ACCESS_KEY of the store (HMAC secret)."
  value       = google_storage_hmac_key.store.secret
  sensitive   = true
}

output "helm_values" {
  description = "Chart values that follow from this infrastructure: terraform output -raw helm_values > gke-values.yaml"
  value = yamlencode({
    store = {
      url            = local.store_url
      existingSecret = "zkfleet-store"
    }
    pools = {
      cpu = {
        nodeSelector = { "zkfleet.io/pool" = "cpu" }
      }
      gpu = {
        enabled = var.gpu_pool_enabled
        nodeSelector = {
          "zkfleet.io/pool"                  = "gpu"
          "cloud.google.com/gke-accelerator" = var.gpu_accelerator_type
        }
        autoscaling = { maxReplicas = var.gpu_max_nodes * var.gpu_count }
      }
    }
    rabbitmq = {
      nodeSelector = { "zkfleet.io/pool" = "cpu" }
    }
    leader = {
      nodeSelector = { "zkfleet.io/pool" = "cpu" }
    }
    metrics = {
      gkePodMonitoring = { enabled = true }
    }
  })
}

locals {
  store_url = "s3://${google_storage_bucket.store.name}/${var.store_prefix}?endpoint=https://storage.googleapis.com&region=auto"
}
