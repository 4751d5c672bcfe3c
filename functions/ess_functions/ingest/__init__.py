"""The ingest function's logic, by stage: envelope (push request or CloudEvent -> Message), push
(raw push requests ahead of functions-framework), checks (frames against the sites
configuration and the database's ranges), pool (database connections), quarantine (poison
messages), ingestor (orchestration). Errors and their reason codes: errors."""

from .ingestor import handle_cloud_event, handle_push_body, warm

__all__ = ["handle_cloud_event", "handle_push_body", "warm"]
