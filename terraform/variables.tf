variable "project_id" {
  type        = string
  description = "ID of the GCP project that holds the fleet (it may be empty: every API the fleet needs is enabled here)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a GCP project ID: 6 to 30 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "region" {
  type        = string
  description = "Region of the network, the bucket's default location and the cluster's control plane when cluster_location is a region."
  default     = "europe-west4"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must be a GCP region such as europe-west4."
  }
}

variable "cluster_location" {
  type        = string
  description = "Zone (or region) of the GKE cluster. A zone keeps the GPU pool in one place where the accelerator type is offered."
  default     = "europe-west4-a"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9](-[a-z])?$", var.cluster_location))
    error_message = "cluster_location must be a GCP zone (europe-west4-a) or region (europe-west4)."
  }
}

variable "name" {
  type        = string
  description = "Prefix of every resource name (cluster, network, node pools, service accounts)."
  default     = "zkfleet"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,18}[a-z0-9]$", var.name))
    error_message = "name must be 3 to 20 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "subnet_cidr" {
  type        = string
  description = "Primary range of the cluster subnet (nodes)."
  default     = "10.10.0.0/20"

  validation {
    condition     = can(cidrhost(var.subnet_cidr, 0))
    error_message = "subnet_cidr must be an IPv4 CIDR block."
  }
}

variable "pods_cidr" {
  type        = string
  description = "Secondary range for pod IPs."
  default     = "10.20.0.0/16"

  validation {
    condition     = can(cidrhost(var.pods_cidr, 0))
    error_message = "pods_cidr must be an IPv4 CIDR block."
  }
}

variable "services_cidr" {
  type        = string
  description = "Secondary range for service IPs."
  default     = "10.30.0.0/20"

  validation {
    condition     = can(cidrhost(var.services_cidr, 0))
    error_message = "services_cidr must be an IPv4 CIDR block."
  }
}

variable "master_cidr" {
  type        = string
  description = "/28 range of the private control plane endpoint."
  default     = "172.16.0.0/28"

  validation {
    condition     = can(cidrhost(var.master_cidr, 0)) && endswith(var.master_cidr, "/28")
    error_message = "master_cidr must be an IPv4 /28 block."
  }
}

variable "authorized_networks" {
  type = list(object({
    cidr_block   = string
    display_name = string
  }))
  description = "Networks allowed to reach the cluster's API server (kubectl, helm). Empty means no access from outside the VPC."
  default     = []

  validation {
    condition     = alltrue([for n in var.authorized_networks : can(cidrhost(n.cidr_block, 0))])
    error_message = "Every authorized_networks cidr_block must be an IPv4 CIDR block."
  }
}

variable "release_channel" {
  type        = string
  description = "GKE release channel of the control plane and nodes."
  default     = "REGULAR"

  validation {
    condition     = contains(["RAPID", "REGULAR", "STABLE"], var.release_channel)
    error_message = "release_channel must be RAPID, REGULAR or STABLE."
  }
}

variable "cpu_machine_type" {
  type        = string
  description = "Machine type of the CPU node pool. The chart's CPU worker requests 4 vCPU and 8 GiB, so a c3-standard-8 holds one worker and the system pods."
  default     = "c3-standard-8"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]*-[a-z0-9-]+$", var.cpu_machine_type))
    error_message = "cpu_machine_type must be a Compute Engine machine type such as c3-standard-8."
  }
}

variable "cpu_min_nodes" {
  type        = number
  description = "Fewest CPU nodes (per zone of the cluster). One keeps the leader, RabbitMQ, KEDA and the system pods running; three put each RabbitMQ node on a machine of its own."
  default     = 1

  validation {
    condition     = var.cpu_min_nodes >= 1 && floor(var.cpu_min_nodes) == var.cpu_min_nodes
    error_message = "cpu_min_nodes must be a whole number of at least 1 (the broker and KEDA live there)."
  }
}

variable "cpu_max_nodes" {
  type        = number
  description = "Most CPU nodes (per zone of the cluster) the cluster autoscaler may add for a CPU backlog."
  default     = 8

  validation {
    condition     = var.cpu_max_nodes >= 1 && floor(var.cpu_max_nodes) == var.cpu_max_nodes
    error_message = "cpu_max_nodes must be a whole number of at least 1."
  }
}

variable "gpu_pool_enabled" {
  type        = bool
  description = "Create the GPU node pool (the gpu_* variables below) and enable the chart's GPU worker pool in helm_values. Needs GPU quota in the zone of cluster_location."
  default     = false
}

variable "gpu_accelerator_type" {
  type        = string
  description = "GPU of the GPU node pool (the zone in cluster_location must offer it)."
  default     = "nvidia-l4"

  validation {
    condition = contains([
      "nvidia-tesla-t4", "nvidia-l4", "nvidia-tesla-a100", "nvidia-a100-80gb",
      "nvidia-h100-80gb", "nvidia-h100-mega-80gb", "nvidia-h200-141gb",
    ], var.gpu_accelerator_type)
    error_message = "gpu_accelerator_type must be one of the GKE accelerator names listed in the validation."
  }
}

variable "gpu_machine_type" {
  type        = string
  description = "Machine type of the GPU node pool; it must accept gpu_accelerator_type (g2-* for L4, a2-* for A100, a3-* for H100)."
  default     = "g2-standard-8"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]*-[a-z0-9-]+$", var.gpu_machine_type))
    error_message = "gpu_machine_type must be a Compute Engine machine type such as g2-standard-8."
  }
}

variable "gpu_count" {
  type        = number
  description = "GPUs attached to each GPU node."
  default     = 1

  validation {
    condition     = contains([1, 2, 4, 8], var.gpu_count)
    error_message = "gpu_count must be 1, 2, 4 or 8."
  }
}

variable "gpu_max_nodes" {
  type        = number
  description = "Most GPU nodes, with gpu_pool_enabled. The GPU pool starts empty and the cluster autoscaler adds nodes only while GPU workers are pending."
  default     = 4

  validation {
    condition     = var.gpu_max_nodes >= 1 && floor(var.gpu_max_nodes) == var.gpu_max_nodes
    error_message = "gpu_max_nodes must be a whole number of at least 1 (gpu_pool_enabled = false leaves the GPU pool out)."
  }
}

variable "gpu_spot" {
  type        = bool
  description = "Run GPU nodes as Spot VMs: cheaper, but reclaimable at any time (a reclaimed worker's task is delivered again)."
  default     = false
}

variable "bucket_name" {
  type        = string
  description = "Name of the GCS bucket of the object store (globally unique)."

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be 3 to 63 lowercase letters, digits, hyphens or underscores."
  }
}

variable "bucket_location" {
  type        = string
  description = "Location of the bucket; empty means the region. Keep it with the cluster: workers read and write every task's data."
  default     = ""

  validation {
    condition     = var.bucket_location == "" || can(regex("^[a-zA-Z0-9-]+$", var.bucket_location))
    error_message = "bucket_location must be empty or a GCS location such as europe-west4 or EU."
  }
}

variable "store_prefix" {
  type        = string
  description = "Key prefix of the store inside the bucket (the path of the store URL)."
  default     = "zkfleet"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9/_-]*[a-z0-9]$", var.store_prefix))
    error_message = "store_prefix must be lowercase letters, digits, '/', '_' or '-', not starting or ending with '/'."
  }
}

variable "job_artifact_days" {
  type        = number
  description = "Age in days after which objects under <store_prefix>/jobs/ are deleted. The leader removes a job's artifacts when the job ends; this catches abandoned jobs."
  default     = 7

  validation {
    condition     = var.job_artifact_days >= 1
    error_message = "job_artifact_days must be at least 1."
  }
}

variable "noncurrent_version_days" {
  type        = number
  description = "Days a deleted or overwritten object's old version is kept (the bucket is versioned) before it is removed."
  default     = 3

  validation {
    condition     = var.noncurrent_version_days >= 1
    error_message = "noncurrent_version_days must be at least 1."
  }
}

variable "deletion_protection" {
  type        = bool
  description = "Refuse to destroy the cluster and a non-empty bucket. Turn off only to tear the fleet down."
  default     = true
}

variable "labels" {
  type        = map(string)
  description = "Labels added to every resource that takes labels."
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.labels : can(regex("^[a-z][a-z0-9_-]{0,62}$", k)) && can(regex("^[a-z0-9_-]{0,63}$", v))])
    error_message = "Label keys must start with a lowercase letter; keys and values take lowercase letters, digits, '_' and '-' (63 at most)."
  }
}
