"""The ingest function's logic, by stage: envelope (push request -> Message), checks (frames
against the sites configuration), pool (database connections), quarantine (poison messages),
ingestor (orchestration). Errors and their reason codes: errors."""

from .ingestor import handle_cloud_event, warm

__all__ = ["handle_cloud_event", "warm"]
