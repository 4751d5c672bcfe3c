variable "project_id" {
  type        = string
  description = "GCP project id of the dev deployment."
}

variable "region" {
  type        = string
  description = "Region of the dev deployment (zones <region>-a and <region>-b are used)."
  default     = "asia-northeast3"
}

variable "sites_config_path" {
  type        = string
  description = "Local path of the sites.yaml to deploy."
  default     = "sites.yaml"
}

variable "wheel_path" {
  type        = string
  description = "Path of the project wheel `make package` built, build/ess_pipeline-<version>-py3-none-any.whl (absolute, or relative to infra/examples/dev), e.g. -var wheel_path=\"$(ls \"$PWD\"/build/ess_pipeline-*.whl)\"."
}

variable "main_db_external_dsn_secret" {
  type        = string
  description = "Secret id of an external TimescaleDB DSN for the main sink; null creates Cloud SQL."
  default     = null
}

variable "replica_db_external_dsn_secret" {
  type        = string
  description = "Secret id of an external TimescaleDB DSN for the replica sink; null creates Cloud SQL."
  default     = null
}

variable "notification_channels" {
  type        = list(string)
  description = "Notification channel ids for the alerts."
  default     = []
}
