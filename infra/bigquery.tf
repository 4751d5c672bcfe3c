# BigQuery over the daily export (docs/export.md, docs/deploy.md): one dataset, one external
# table per export type, nothing loaded. Each table reads gs://CSV_BUCKET/type=T/*<suffix> with
# hive partitioning on `date` (the folder date=YYYY-MM-DD), so a query filtered on `date` reads
# only that day's files. var.export_format picks the files the tables read (and the format the
# scheduler asks for): csv and csv.gz with the explicit column schema of
# schemas/bigquery/<table>.json (rendered from the register maps), parquet with the schema the
# files carry. var.bigquery_dataset = null creates none of this.

locals {
  bigquery_types  = var.bigquery_dataset == null ? [] : ["bank", "rack", "pcs", "etc", "events"] # events: issue 22, docs/events.md
  export_suffix   = { "csv" = ".csv", "csv.gz" = ".csv.gz", "parquet" = ".parquet" }[var.export_format]
  export_parquet  = var.export_format == "parquet"
  export_bucket_u = "gs://${google_storage_bucket.this["csv"].name}"
}

resource "google_bigquery_dataset" "export" {
  #checkov:skip=CKV_GCP_81:Holds only external table definitions; the data stays in the export bucket, encrypted there, so a dataset KMS key would protect nothing.
  count = var.bigquery_dataset == null ? 0 : 1

  project                    = var.project_id
  dataset_id                 = var.bigquery_dataset
  location                   = local.bucket_location
  description                = "ESS daily export files as external tables (bank, rack, pcs, etc, events)."
  delete_contents_on_destroy = var.force_destroy_buckets
  labels                     = local.labels

  depends_on = [google_project_service.apis]
}

resource "google_bigquery_table" "export" {
  #checkov:skip=CKV_GCP_80:External table: BigQuery stores no rows of it; the files are encrypted by the export bucket, so a table KMS key would protect nothing.
  for_each = toset(local.bigquery_types)

  project             = var.project_id
  dataset_id          = google_bigquery_dataset.export[0].dataset_id
  table_id            = each.key
  description         = "Daily ${each.key} files (${var.export_format}), partitioned on date (the site's local day)."
  deletion_protection = true # holds no data; set false before a terraform destroy of the dataset
  labels              = local.labels

  external_data_configuration {
    autodetect    = false
    source_format = local.export_parquet ? "PARQUET" : "CSV"
    source_uris   = ["${local.export_bucket_u}/type=${each.key}/*${local.export_suffix}"]
    compression   = local.export_parquet ? null : (var.export_format == "csv.gz" ? "GZIP" : "NONE")
    schema        = local.export_parquet ? null : file("${path.module}/../schemas/bigquery/${each.key}.json")

    hive_partitioning_options {
      mode                     = "CUSTOM"
      source_uri_prefix        = "${local.export_bucket_u}/type=${each.key}/{date:DATE}"
      require_partition_filter = false
    }

    dynamic "csv_options" {
      for_each = local.export_parquet ? [] : [1]
      content {
        quote                 = "\""
        field_delimiter       = ","
        skip_leading_rows     = 1
        encoding              = "UTF-8"
        allow_jagged_rows     = false
        allow_quoted_newlines = false
      }
    }

    dynamic "parquet_options" {
      for_each = local.export_parquet ? [1] : []
      content {
        enable_list_inference = true
      }
    }
  }
}
