# The object store: a GCS bucket used through its S3-compatible API, with HMAC credentials of a
# service account that can touch objects of this bucket and nothing else.

resource "google_storage_bucket" "store" {
  name                        = var.bucket_name
  location                    = coalesce(var.bucket_location, var.region)
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = !var.deletion_protection
  labels                      = local.labels

  # Old versions of deleted or replaced objects (proofs included) survive a mistake for a while.
  versioning {
    enabled = true
  }

  # Artifacts of jobs that never finished (their leader died and nobody resumed them).
  lifecycle_rule {
    condition {
      age            = var.job_artifact_days
      matches_prefix = ["${var.store_prefix}/jobs/"]
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_version_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_service_account" "store" {
  account_id   = "${var.name}-store"
  display_name = "zkfleet object store (leader and workers)"
}

# Create, read, list and delete objects of this bucket only; no bucket or IAM administration.
resource "google_storage_bucket_iam_member" "store" {
  bucket = google_storage_bucket.store.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.store.email}"
}

# The S3 API of GCS takes HMAC keys: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY of the pods.
resource "google_storage_hmac_key" "store" {
  service_account_email = google_service_account.store.email
}
