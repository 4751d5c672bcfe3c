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

variable "artifacts" {
  type = object({
    wheel      = string
    ingest_zip = string
    export_zip = string
  })
  description = "Paths of the files `make package` builds (infra/package.py): the project wheel installed on the collector VM (build/ess_pipeline-<version>-py3-none-any.whl; pip needs that file name, so it is kept as the object name) and the two function sources (build/ingest.zip, build/export.zip). Inputs, so that planning never globs build/."

  validation {
    condition     = can(regex("^[A-Za-z0-9_.]+-[^-/]+-[^-/]+-[^-/]+-[^-/]+\\.whl$", basename(var.artifacts.wheel)))
    error_message = "artifacts.wheel must be a wheel file named like ess_pipeline-<version>-py3-none-any.whl (pip installs by that name)."
  }

  validation {
    condition     = endswith(var.artifacts.ingest_zip, ".zip") && endswith(var.artifacts.export_zip, ".zip")
    error_message = "artifacts.ingest_zip and artifacts.export_zip must be .zip files (build/ingest.zip, build/export.zip)."
  }
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

  validation {
    condition     = var.push_ack_deadline_seconds >= 10 && var.push_ack_deadline_seconds <= 600
    error_message = "push_ack_deadline_seconds must be from 10 to 600 (Pub/Sub's range)."
  }
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
  description = "Delivery attempts before a message goes to the dead-letter topic (5-100). With push_min_backoff 10s and push_max_backoff 600s, 100 attempts retry a sink's outage for about 16 hours; what is still failing then waits in the dead-letter subscription for `ess replay-dead-letters` (docs/deploy.md)."
  default     = 100

  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100 && floor(var.max_delivery_attempts) == var.max_delivery_attempts
    error_message = "max_delivery_attempts must be a whole number from 5 to 100 (Pub/Sub's range)."
  }
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

variable "ingest" {
  type = object({
    memory          = optional(string, "512Mi")
    cpu             = optional(string, "1")
    concurrency     = optional(number, 16)
    min_instances   = optional(number, 1)
    max_instances   = optional(number, 10)
    timeout_seconds = optional(number, 60)
  })
  description = <<-EOT
    Settings of each ingest function (both sinks): memory and vCPU per instance (concurrency
    above 1 needs at least 1 vCPU); concurrency = concurrent push requests per instance, also its
    functions-framework THREADS (concurrent pushes are group-committed, so more concurrency means
    larger statements, not more DB connections: at most ESS_GROUP_WRITERS = 2 per instance);
    min_instances warm instances (0 = scale to zero, 1 avoids cold starts on 1 Hz data);
    max_instances (keep 2 x max_instances x 2 sinks below the databases' max_connections);
    timeout_seconds of a request (at most push_ack_deadline_seconds).
  EOT
  default     = {}
  nullable    = false

  validation {
    condition     = can(regex("^[1-9][0-9]*(Mi|Gi|M|G)$", var.ingest.memory))
    error_message = "ingest.memory must be a size like 512Mi or 2Gi."
  }

  validation {
    condition     = try(tonumber(var.ingest.cpu) > 0 && tonumber(var.ingest.cpu) <= 8, false) && (var.ingest.concurrency == 1 || try(tonumber(var.ingest.cpu) >= 1, false))
    error_message = "ingest.cpu must be a number of vCPUs in (0, 8], and at least 1 when concurrency is above 1."
  }

  validation {
    condition     = floor(var.ingest.concurrency) == var.ingest.concurrency && var.ingest.concurrency >= 1 && var.ingest.concurrency <= 1000
    error_message = "ingest.concurrency must be a whole number from 1 to 1000 (Cloud Run's limit)."
  }

  validation {
    condition     = var.ingest.min_instances >= 0 && var.ingest.max_instances >= 1 && var.ingest.max_instances >= var.ingest.min_instances && floor(var.ingest.min_instances) == var.ingest.min_instances && floor(var.ingest.max_instances) == var.ingest.max_instances
    error_message = "ingest.min_instances must be >= 0, ingest.max_instances >= 1 and >= min_instances, both whole numbers."
  }

  validation {
    condition     = floor(var.ingest.timeout_seconds) == var.ingest.timeout_seconds && var.ingest.timeout_seconds >= 1 && var.ingest.timeout_seconds <= 3600
    error_message = "ingest.timeout_seconds must be whole seconds from 1 to 3600 (HTTP functions' limit)."
  }
}

variable "export" {
  type = object({
    memory          = optional(string, "1Gi")
    cpu             = optional(string, "1")
    concurrency     = optional(number, 1)
    min_instances   = optional(number, 0)
    max_instances   = optional(number, 2)
    timeout_seconds = optional(number, 1800)
  })
  description = <<-EOT
    Settings of the export function: memory and vCPU of its instance; concurrency (1: one daily
    export at a time); min_instances (0: it runs once a day) and max_instances; timeout_seconds of
    a request (HTTP functions allow up to 3600; Cloud Scheduler waits at most 1800).
  EOT
  default     = {}
  nullable    = false

  validation {
    condition     = can(regex("^[1-9][0-9]*(Mi|Gi|M|G)$", var.export.memory))
    error_message = "export.memory must be a size like 1Gi or 512Mi."
  }

  validation {
    condition     = try(tonumber(var.export.cpu) > 0 && tonumber(var.export.cpu) <= 8, false) && (var.export.concurrency == 1 || try(tonumber(var.export.cpu) >= 1, false))
    error_message = "export.cpu must be a number of vCPUs in (0, 8], and at least 1 when concurrency is above 1."
  }

  validation {
    condition     = floor(var.export.concurrency) == var.export.concurrency && var.export.concurrency >= 1 && var.export.concurrency <= 1000
    error_message = "export.concurrency must be a whole number from 1 to 1000 (Cloud Run's limit)."
  }

  validation {
    condition     = var.export.min_instances >= 0 && var.export.max_instances >= 1 && var.export.max_instances >= var.export.min_instances && floor(var.export.min_instances) == var.export.min_instances && floor(var.export.max_instances) == var.export.max_instances
    error_message = "export.min_instances must be >= 0, export.max_instances >= 1 and >= min_instances, both whole numbers."
  }

  validation {
    condition     = floor(var.export.timeout_seconds) == var.export.timeout_seconds && var.export.timeout_seconds >= 1 && var.export.timeout_seconds <= 3600
    error_message = "export.timeout_seconds must be whole seconds from 1 to 3600 (HTTP functions' limit)."
  }
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

variable "database" {
  type = object({
    version                 = optional(string, "POSTGRES_17")
    tier                    = optional(string, "db-custom-2-7680")
    availability_type       = optional(string, "ZONAL")
    disk_size_gb            = optional(number, 50)
    name                    = optional(string, "ess")
    backup_start_time       = optional(string, "18:00")
    backup_retained_count   = optional(number, 14)
    pitr_log_retention_days = optional(number, 7)
    deletion_protection     = optional(bool, true)
    max_connections         = optional(number, 200)
    replica_region          = optional(string)
    replica_zone            = optional(string, "asia-northeast3-b")
    external_dsn_secret = optional(object({
      main    = optional(string)
      replica = optional(string)
    }), {})
  })
  description = <<-EOT
    The two database sinks. Cloud SQL instances (one per sink without an external DSN) use:
    version (PostgreSQL major; clients connect through the Cloud SQL connector, mTLS client
    certificates required), tier (machine tier of each instance), availability_type (ZONAL, or
    REGIONAL = HA standby at twice the cost), disk_size_gb (initial SSD size; auto-resize is on),
    name (database created in every instance, ESS_DB_NAME), backup_start_time (UTC HH:MM; 18:00
    UTC = 03:00 Asia/Seoul), backup_retained_count, pitr_log_retention_days (1-7),
    deletion_protection (Terraform and API level), max_connections (flag of each instance),
    replica_region (another region for disaster recovery; null = region) and replica_zone
    (preferred zone of the replica, should differ from zone).
    external_dsn_secret.main / .replica: Secret Manager secret id (in project_id) holding a
    postgresql:// DSN of an external TimescaleDB used as that sink instead of Cloud SQL; null
    creates the Cloud SQL instance. Create the secret out of band; its value never enters Terraform.
  EOT
  default     = {}
  nullable    = false

  validation {
    condition     = can(regex("^POSTGRES_[0-9]+$", var.database.version))
    error_message = "database.version must be a Cloud SQL PostgreSQL version such as POSTGRES_17."
  }

  validation {
    condition     = can(regex("^db-(f1-micro|g1-small|custom-[0-9]+-[0-9]+|n1-(standard|highmem)-[0-9]+)$", var.database.tier))
    error_message = "database.tier must be a Cloud SQL Enterprise tier: db-custom-<vCPUs>-<MiB>, db-f1-micro, db-g1-small or db-n1-*."
  }

  validation {
    condition     = contains(["ZONAL", "REGIONAL"], var.database.availability_type)
    error_message = "database.availability_type must be ZONAL or REGIONAL."
  }

  validation {
    condition     = floor(var.database.disk_size_gb) == var.database.disk_size_gb && var.database.disk_size_gb >= 10 && var.database.disk_size_gb <= 65536
    error_message = "database.disk_size_gb must be whole GB from 10 to 65536."
  }

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_]{0,62}$", var.database.name))
    error_message = "database.name must be a lower-case PostgreSQL identifier of at most 63 chars."
  }

  validation {
    condition     = can(regex("^([01][0-9]|2[0-3]):[0-5][0-9]$", var.database.backup_start_time))
    error_message = "database.backup_start_time must be UTC HH:MM."
  }

  validation {
    condition     = var.database.backup_retained_count >= 1 && var.database.backup_retained_count <= 365
    error_message = "database.backup_retained_count must be from 1 to 365."
  }

  validation {
    condition     = var.database.pitr_log_retention_days >= 1 && var.database.pitr_log_retention_days <= 7
    error_message = "database.pitr_log_retention_days must be from 1 to 7 (Cloud SQL Enterprise edition)."
  }

  validation {
    condition     = floor(var.database.max_connections) == var.database.max_connections && var.database.max_connections >= 14 && var.database.max_connections <= 262143
    error_message = "database.max_connections must be a whole number from 14 to 262143 (Cloud SQL's range of the flag)."
  }

  validation {
    condition = alltrue([for s in [var.database.external_dsn_secret.main, var.database.external_dsn_secret.replica] :
    s == null ? true : can(regex("^[A-Za-z0-9_-]{1,255}$", s))])
    error_message = "database.external_dsn_secret.main/replica must be Secret Manager secret ids ([A-Za-z0-9_-], at most 255 chars) or null."
  }
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

# --- export format / BigQuery -----------------------------------------------

variable "export_format" {
  type        = string
  description = "Format of the scheduled daily export: csv, csv.gz or parquet. The BigQuery external tables read the files of this format (CSV with the explicit schema of schemas/bigquery/, Parquet with the files' own)."
  default     = "csv"
  nullable    = false

  validation {
    condition     = contains(["csv", "csv.gz", "parquet"], var.export_format)
    error_message = "export_format must be csv, csv.gz or parquet."
  }
}

variable "bigquery_dataset" {
  type        = string
  description = "BigQuery dataset id for the external tables over the daily export (bank, rack, pcs, etc). Null creates no dataset and no tables."
  default     = null

  validation {
    condition     = var.bigquery_dataset == null || can(regex("^[A-Za-z0-9_]{1,1024}$", var.bigquery_dataset))
    error_message = "bigquery_dataset must be letters, digits and underscores (at most 1024), or null."
  }
}

variable "completeness_threshold_percent" {
  type        = number
  description = "Alert when a bank's daily completeness (stored / expected ticks of a local day, from the export's data status) is below this percentage."
  default     = 99.9

  validation {
    condition     = var.completeness_threshold_percent > 0 && var.completeness_threshold_percent <= 100
    error_message = "completeness_threshold_percent must be in (0, 100]."
  }
}

# --- alerts on backlogs (issue 21) --------------------------------------------

variable "backlog_alert_age_seconds" {
  type = object({
    ingest      = optional(number, 900)
    raw_archive = optional(number, 1800)
    dead_letter = optional(number, 172800)
  })
  description = "Alert when the oldest unacknowledged message of a subscription is older than this many seconds: each sink's ingest and replay subscriptions (default 15 min, far below the ~16 h retry budget), the raw archive (30 min; it writes a file at least every raw_archive_max_duration), the dead-letter subscription (2 days: replay before its 7-day retention ends)."
  default     = {}
  nullable    = false

  validation {
    condition     = alltrue([for v in values(var.backlog_alert_age_seconds) : v >= 60 && v < 604800])
    error_message = "backlog_alert_age_seconds values must be from 60 s up to (not including) 7 days, the messages' retention."
  }
}

# --- database job (issue 21) --------------------------------------------------

variable "db_job" {
  type = object({
    image           = optional(string, "docker.io/library/python:3.11-slim-bookworm")
    timeout_seconds = optional(number, 3600)
  })
  description = "The database job (migrate.tf): a Python 3.11 image it installs the wheel into (the collector VM's Python; Docker Hub's official image by default: Cloud Run deploys Docker Hub and Artifact Registry images), and how long one run may take."
  default     = {}
  nullable    = false

  validation {
    condition     = length(var.db_job.image) > 0 && var.db_job.timeout_seconds >= 60 && var.db_job.timeout_seconds <= 86400
    error_message = "db_job.image must be set and db_job.timeout_seconds from 60 to 86400."
  }
}

# --- rollups and retention tiers (issue 23; docs/scaling.md) -----------------

variable "retention" {
  type = object({
    raw_days             = optional(number, 30)
    minute_rollup_days   = optional(number, 730)
    hour_rollup_days     = optional(number, 0)
    schedule             = optional(string, "30 3 * * *")
    rollup_schedule      = optional(string, "*/5 * * * *")
    rollup_stale_minutes = optional(number, 60)
  })
  description = <<-EOT
    Retention tiers in the databases (every day also stays in the export bucket forever):
    raw_days of raw and ledger rows (a day's partitions are dropped only once its export
    manifest matches the database), minute_rollup_days of 1-minute rollups and
    hour_rollup_days of 1-hour rollups (0: forever). schedule runs retention daily and
    rollup_schedule brings the rollups up to date (cron, in export_time_zone; Cloud
    Scheduler calls the export function with a `task`). rollup_stale_minutes: alert when
    no rollup run has brought the rollups up to date for this long (15 to 1440 minutes, and
    at least two periods of rollup_schedule; also after the first deploy).
  EOT
  default     = {}
  nullable    = false

  validation {
    condition     = floor(var.retention.raw_days) == var.retention.raw_days && var.retention.raw_days >= 3 && var.retention.raw_days <= 3660
    error_message = "retention.raw_days must be whole days from 3 (the export re-runs recent days) to 3660."
  }

  validation {
    condition     = floor(var.retention.minute_rollup_days) == var.retention.minute_rollup_days && (var.retention.minute_rollup_days == 0 || var.retention.minute_rollup_days >= var.retention.raw_days)
    error_message = "retention.minute_rollup_days must be whole days, at least raw_days, or 0 (forever)."
  }

  validation {
    condition     = floor(var.retention.hour_rollup_days) == var.retention.hour_rollup_days && (var.retention.hour_rollup_days == 0 || (var.retention.minute_rollup_days > 0 && var.retention.hour_rollup_days >= var.retention.minute_rollup_days))
    error_message = "retention.hour_rollup_days must be whole days, at least minute_rollup_days (which must then not be 0), or 0 (forever)."
  }

  validation {
    condition     = alltrue([for s in [var.retention.schedule, var.retention.rollup_schedule] : can(regex("^\\S+( \\S+){4}$", s))])
    error_message = "retention.schedule and retention.rollup_schedule must be cron expressions of five fields."
  }

  # The period of rollup_schedule in minutes where its form tells: */N (N), * (1), or a fixed
  # minute of every hour (60); a window of two periods survives one late or failed run.
  validation {
    condition = alltrue([
      floor(var.retention.rollup_stale_minutes) == var.retention.rollup_stale_minutes,
      var.retention.rollup_stale_minutes >= 15 && var.retention.rollup_stale_minutes <= 1440,
      var.retention.rollup_stale_minutes >= 2 * try(
        tonumber(regex("^\\*/(\\d+) ", var.retention.rollup_schedule)[0]),
        can(regex("^\\d+ \\* ", var.retention.rollup_schedule)) ? 60 : 1,
      ),
    ])
    error_message = "retention.rollup_stale_minutes must be whole minutes from 15 to 1440, and at least twice the period of retention.rollup_schedule."
  }
}
