# Every variable is typed and described (checked by tests/infra/test_terraform.py).

# --- project / naming -------------------------------------------------------

variable "project_id" {
  type        = string
  description = "GCP project id that hosts the whole pipeline."
}

variable "region" {
  type        = string
  description = "Region for the VPC subnet, functions, Cloud SQL main instance, Scheduler and buckets."
  default     = "asia-northeast3"
}

variable "zone" {
  type        = string
  description = "Zone for the collector VM and the main Cloud SQL instance's preferred zone."
  default     = "asia-northeast3-a"
}

variable "prefix" {
  type        = string
  description = "Short name prefix for every resource (service accounts, topics, functions, instances). Lower-case, 2-10 chars."
  default     = "ess"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,9}$", var.prefix))
    error_message = "prefix must be 2-10 chars of [a-z0-9-], starting with a letter."
  }
}

variable "labels" {
  type        = map(string)
  description = "Labels added to every resource that supports them."
  default     = {}
}

variable "enable_apis" {
  type        = bool
  description = "Enable the required Google APIs on the project (set false when a project factory already does it)."
  default     = true
}

# --- build artifacts (make package) ----------------------------------------

variable "build_dir" {
  type        = string
  description = "Directory holding the outputs of `make package` (ess_pipeline-*.whl, ingest.zip, export.zip). Null means <repo>/build."
  default     = null
}

variable "sites_config_path" {
  type        = string
  description = "Local path of the sites.yaml uploaded to the artifacts bucket; the collector VM and the functions read it from there (ESS_SITES_CONFIG)."
}

# --- network ----------------------------------------------------------------

variable "subnet_cidr" {
  type        = string
  description = "Primary CIDR range of the subnet the collector VM lives in."
  default     = "10.10.0.0/24"
}

variable "connector_cidr" {
  type        = string
  description = "/28 CIDR range for the Serverless VPC Access connector the functions use to reach Cloud SQL private IPs."
  default     = "10.10.8.0/28"
}

variable "private_services_cidr" {
  type        = string
  description = "CIDR range reserved for private services access (Cloud SQL private IPs)."
  default     = "10.20.0.0/20"
}

variable "iap_ssh_source_ranges" {
  type        = list(string)
  description = "Source ranges allowed to SSH to the collector VM on port 22. Set it to Google's published IAP TCP forwarding range to use `gcloud compute ssh --tunnel-through-iap`. Empty (the default) creates no SSH rule."
  default     = []
}

variable "connector_machine_type" {
  type        = string
  description = "Machine type of the Serverless VPC Access connector instances."
  default     = "e2-micro"
}

variable "connector_max_instances" {
  type        = number
  description = "Maximum instances of the Serverless VPC Access connector (min is 2)."
  default     = 3
}

variable "function_vpc_egress" {
  type        = string
  description = "Functions' VPC egress: PRIVATE_RANGES_ONLY (Cloud SQL via connector, internet direct) or ALL_TRAFFIC (everything through the VPC and Cloud NAT, e.g. for an IP-allowlisted external TimescaleDB)."
  default     = "PRIVATE_RANGES_ONLY"

  validation {
    condition     = contains(["PRIVATE_RANGES_ONLY", "ALL_TRAFFIC"], var.function_vpc_egress)
    error_message = "function_vpc_egress must be PRIVATE_RANGES_ONLY or ALL_TRAFFIC."
  }
}

# --- collector VM -----------------------------------------------------------

variable "collector_machine_type" {
  type        = string
  description = "Machine type of the collector VM."
  default     = "e2-small"
}

variable "collector_image" {
  type        = string
  description = "Boot image of the collector VM (needs python3 >= 3.11 and systemd)."
  default     = "debian-cloud/debian-12"
}

variable "collector_disk_size_gb" {
  type        = number
  description = "Boot disk size of the collector VM in GB (holds the local spool when Pub/Sub is unreachable)."
  default     = 20
}

variable "collector_install_ops_agent" {
  type        = bool
  description = "Install the Ops Agent on the collector VM so its structured JSON logs (journald) reach Cloud Logging as jsonPayload."
  default     = true
}

# --- Pub/Sub ----------------------------------------------------------------

variable "topic_message_retention" {
  type        = string
  description = "How long the frames topic retains messages (allows seek/replay into new subscriptions)."
  default     = "604800s"
}

variable "subscription_message_retention" {
  type        = string
  description = "How long push subscriptions keep unacked messages."
  default     = "604800s"
}

variable "push_ack_deadline_seconds" {
  type        = number
  description = "Ack deadline of the push subscriptions; at least the ingest function timeout."
  default     = 120
}

variable "push_min_backoff" {
  type        = string
  description = "Minimum retry backoff of the push subscriptions."
  default     = "10s"
}

variable "push_max_backoff" {
  type        = string
  description = "Maximum retry backoff of the push subscriptions."
  default     = "600s"
}

variable "max_delivery_attempts" {
  type        = number
  description = "Delivery attempts before a message goes to the dead-letter topic (5-100)."
  default     = 10
}

variable "raw_archive_max_duration" {
  type        = string
  description = "Maximum time the Cloud Storage subscription waits before closing a raw-archive Avro file (60s-600s, and at most the subscription's 300 s ack deadline)."
  default     = "300s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.raw_archive_max_duration)) && try(tonumber(trimsuffix(var.raw_archive_max_duration, "s")) >= 60 && tonumber(trimsuffix(var.raw_archive_max_duration, "s")) <= 600, false)
    error_message = "raw_archive_max_duration must be whole seconds between 60s and 600s, e.g. \"300s\"."
  }
}

# --- functions --------------------------------------------------------------

variable "function_runtime" {
  type        = string
  description = "Python runtime of the Cloud Run functions."
  default     = "python312"
}

variable "ingest_memory" {
  type        = string
  description = "Memory per ingest function instance."
  default     = "512Mi"
}

variable "ingest_cpu" {
  type        = string
  description = "vCPU per ingest function instance (concurrency above 1 needs at least 1)."
  default     = "1"
}

variable "ingest_concurrency" {
  type        = number
  description = "Concurrent push requests per ingest instance (also its functions-framework THREADS). Concurrent pushes are group-committed, so more concurrency means larger statements, not more DB connections (at most ESS_GROUP_WRITERS = 2 per instance)."
  default     = 16
}

variable "ingest_min_instances" {
  type        = number
  description = "Minimum warm instances per ingest function (0 = scale to zero; 1 avoids cold starts on 1 Hz data)."
  default     = 1
}

variable "ingest_max_instances" {
  type        = number
  description = "Maximum instances per ingest function; each holds at most 2 database connections (group commit), so keep 2 x max_instances x 2 sinks below the databases' max_connections."
  default     = 10
}

variable "ingest_timeout_seconds" {
  type        = number
  description = "Request timeout of the ingest functions (must not exceed push_ack_deadline_seconds)."
  default     = 60
}

variable "export_memory" {
  type        = string
  description = "Memory of the export function instance."
  default     = "1Gi"
}

variable "export_cpu" {
  type        = string
  description = "vCPU of the export function instance."
  default     = "1"
}

variable "export_concurrency" {
  type        = number
  description = "Concurrent requests per export instance (1: one daily export at a time)."
  default     = 1
}

variable "export_min_instances" {
  type        = number
  description = "Minimum instances of the export function (0: it runs once a day)."
  default     = 0
}

variable "export_max_instances" {
  type        = number
  description = "Maximum instances of the export function."
  default     = 2
}

variable "export_timeout_seconds" {
  type        = number
  description = "Request timeout of the export function (HTTP functions allow up to 3600)."
  default     = 1800
}

variable "function_ingress" {
  type        = string
  description = "Ingress setting of all functions. ALLOW_INTERNAL_ONLY still admits Pub/Sub push and Cloud Scheduler from this project; invocation additionally needs run.invoker, which only the invoker/scheduler service accounts hold."
  default     = "ALLOW_INTERNAL_ONLY"

  validation {
    condition     = contains(["ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB", "ALLOW_ALL"], var.function_ingress)
    error_message = "function_ingress must be ALLOW_INTERNAL_ONLY, ALLOW_INTERNAL_AND_GCLB or ALLOW_ALL."
  }
}

# --- databases --------------------------------------------------------------

variable "main_db_external_dsn_secret" {
  type        = string
  description = "Secret Manager secret id (in project_id) holding a postgresql:// DSN of an external TimescaleDB used as the MAIN sink instead of Cloud SQL. Null creates a Cloud SQL instance. Create it out of band; its value never enters Terraform."
  default     = null
}

variable "replica_db_external_dsn_secret" {
  type        = string
  description = "Secret Manager secret id holding the DSN of an external TimescaleDB used as the REPLICA sink. Null creates a second Cloud SQL instance in replica_db_region/replica_db_zone."
  default     = null
}

variable "replica_db_region" {
  type        = string
  description = "Region of the replica Cloud SQL instance (another region for disaster recovery, or the same region with another zone). Null means var.region."
  default     = null
}

variable "replica_db_zone" {
  type        = string
  description = "Preferred zone of the replica Cloud SQL instance; should differ from var.zone."
  default     = "asia-northeast3-b"
}

variable "db_version" {
  type        = string
  description = "Cloud SQL PostgreSQL major version. Clients connect through the Cloud SQL connector (mTLS client certificates are required)."
  default     = "POSTGRES_17"
}

variable "db_tier" {
  type        = string
  description = "Cloud SQL machine tier of each instance."
  default     = "db-custom-2-7680"
}

variable "db_availability_type" {
  type        = string
  description = "ZONAL or REGIONAL (HA standby, doubles the instance cost)."
  default     = "ZONAL"

  validation {
    condition     = contains(["ZONAL", "REGIONAL"], var.db_availability_type)
    error_message = "db_availability_type must be ZONAL or REGIONAL."
  }
}

variable "db_disk_size_gb" {
  type        = number
  description = "Initial SSD size per Cloud SQL instance in GB (auto-resize is on)."
  default     = 50
}

variable "db_name" {
  type        = string
  description = "Database name created in every Cloud SQL instance (ESS_DB_NAME)."
  default     = "ess"
}

variable "db_backup_start_time" {
  type        = string
  description = "UTC HH:MM at which automated backups start (18:00 UTC = 03:00 Asia/Seoul)."
  default     = "18:00"
}

variable "db_backup_retained_count" {
  type        = number
  description = "Number of automated backups kept."
  default     = 14
}

variable "db_pitr_log_retention_days" {
  type        = number
  description = "Days of transaction logs kept for point-in-time recovery (1-7)."
  default     = 7
}

variable "db_deletion_protection" {
  type        = bool
  description = "Deletion protection of the Cloud SQL instances (Terraform and API level)."
  default     = true
}

variable "db_max_connections" {
  type        = number
  description = "max_connections flag of each Cloud SQL instance."
  default     = 200
}

# --- export / scheduler -----------------------------------------------------

variable "export_schedule" {
  type        = string
  description = "Cron schedule of the daily CSV export (in export_time_zone)."
  default     = "30 0 * * *"
}

variable "export_time_zone" {
  type        = string
  description = "IANA time zone of export_schedule."
  default     = "Asia/Seoul"
}

# --- buckets ----------------------------------------------------------------

variable "bucket_location" {
  type        = string
  description = "Location of the buckets. Null means var.region."
  default     = null
}

variable "nearline_after_days" {
  type        = number
  description = "Age in days after which CSV exports and raw frames move to NEARLINE."
  default     = 30
}

variable "coldline_after_days" {
  type        = number
  description = "Age in days after which raw frames move to COLDLINE."
  default     = 365
}

variable "noncurrent_version_days" {
  type        = number
  description = "Days after which non-current object versions are deleted."
  default     = 30
}

variable "quarantine_retention_days" {
  type        = number
  description = "Days quarantined (poison) messages are kept."
  default     = 180
}

variable "access_log_retention_days" {
  type        = number
  description = "Days bucket access logs are kept."
  default     = 90
}

variable "grant_storage_analytics_writer" {
  type        = bool
  description = "Let Google's cloud-storage-analytics group write bucket access logs into the access-log bucket. Set false under a Domain Restricted Sharing org policy (iam.allowedPolicyMemberDomains), which rejects that group; the buckets then keep no access logs."
  default     = true
}

variable "force_destroy_buckets" {
  type        = bool
  description = "Allow terraform destroy to delete non-empty buckets (dev only)."
  default     = false
}

# --- monitoring -------------------------------------------------------------

variable "notification_channels" {
  type        = list(string)
  description = "Cloud Monitoring notification channel ids (projects/<p>/notificationChannels/<n>) that receive every alert."
  default     = []
}

variable "site_silence_minutes" {
  type        = number
  description = "Minutes without stored frames from a site before the no-data alert fires."
  default     = 5
}

variable "function_error_ratio_threshold" {
  type        = number
  description = "Fraction of 5xx responses of a function over 5 minutes that raises an alert."
  default     = 0.05
}
