output "frames_topic" {
  description = "Frames topic id."
  value       = module.ess.frames_topic
}

output "ingest_function_urls" {
  description = "Ingest function URLs by sink."
  value       = module.ess.ingest_function_urls
}

output "export_function_url" {
  description = "Export function URL."
  value       = module.ess.export_function_url
}

output "buckets" {
  description = "Bucket names."
  value       = module.ess.buckets
}

output "db_connection_names" {
  description = "Cloud SQL connection names by sink."
  value       = module.ess.db_connection_names
}

output "db_grants_sql" {
  description = "SQL grants for the IAM database users."
  value       = module.ess.db_grants_sql
}

output "dead_letter_replay_command" {
  description = "After a sink's outage outlasted its retry budget: the command that replays the dead letters into their sinks (docs/deploy.md)."
  value       = module.ess.dead_letter_replay_command
}

output "db_setup_commands" {
  description = "First deploy: per Cloud SQL instance, the one-off role for the migration user and the database job (docs/deploy.md)."
  value       = module.ess.db_setup_commands
}
