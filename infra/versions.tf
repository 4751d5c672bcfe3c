terraform {
  required_version = ">= 1.5.0, < 2.0.0"

  required_providers {
    # >= 6.13: disable_metric_validation on PromQL conditions; 5.x has a VPC-connector permadiff.
    google = {
      source  = "hashicorp/google"
      version = ">= 6.13.0, < 7.0.0"
    }
    google-beta = {
      source  = "hashicorp/google-beta"
      version = ">= 6.13.0, < 7.0.0"
    }
    # time_sleep: IAM propagation before the function builds, metric descriptors before alerts.
    time = {
      source  = "hashicorp/time"
      version = ">= 0.11.0, < 1.0.0"
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.6.0, < 4.0.0"
    }
  }

  provider_meta "google" {
    module_name = "ess-pipeline/infra/v0.1.0"
  }
}
