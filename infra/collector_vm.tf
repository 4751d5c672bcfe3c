# Collector VM: small, no external IP, OS Login, Shielded VM, its own service account.

locals {
  # What the VM (and the database job, migrate.tf) install besides the wheel: pinned versions
  # only (collector/requirements.txt, the versions `make test` runs), and pip itself pinned.
  pinned_requirements = trimspace(file("${path.module}/../collector/requirements.txt"))
  pip_version         = "26.3"
}

resource "google_compute_instance" "collector" {
  #checkov:skip=CKV_GCP_38:Boot disk holds only the OS, the public wheel and a transient spool; Google-managed encryption at rest is sufficient and CSEK would block unattended restarts.
  project                   = var.project_id
  name                      = "${var.prefix}-collector"
  zone                      = var.zone
  machine_type              = var.collector_machine_type
  allow_stopping_for_update = true
  labels                    = local.labels

  boot_disk {
    initialize_params {
      image = var.collector_image
      size  = var.collector_disk_size_gb
      type  = "pd-balanced"
    }
  }

  # No access_config block: no external IP; egress through Cloud NAT.
  network_interface {
    subnetwork = google_compute_subnetwork.main.id
  }

  service_account {
    email  = google_service_account.component["collector"].email
    scopes = ["cloud-platform"]
  }

  shielded_instance_config {
    enable_secure_boot          = true
    enable_vtpm                 = true
    enable_integrity_monitoring = true
  }

  metadata = {
    enable-oslogin         = "TRUE"
    block-project-ssh-keys = "TRUE"
    serial-port-enable     = "FALSE"
    ess-wheel-md5          = google_storage_bucket_object.collector_wheel.md5hash
    ess-sites-md5          = google_storage_bucket_object.sites.md5hash
    startup-script = templatefile("${path.module}/templates/collector-startup.sh.tftpl", {
      bucket            = google_storage_bucket.this["artifacts"].name
      wheel_object      = google_storage_bucket_object.collector_wheel.name
      sites_object      = google_storage_bucket_object.sites.name
      topic             = google_pubsub_topic.frames.id
      project_id        = var.project_id
      install_ops_agent = var.collector_install_ops_agent
      unit_file         = trimspace(file("${path.module}/../collector/systemd/ess-collector.service"))
      requirements      = local.pinned_requirements
      pip_version       = local.pip_version
    })
  }

  depends_on = [
    google_compute_router_nat.nat,
    google_project_iam_member.component,
    google_pubsub_topic_iam_member.collector_publisher,
    google_storage_bucket_iam_member.artifacts_reader,
  ]
}
