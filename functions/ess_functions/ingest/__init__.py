"""The ingest function's logic, by stage: envelope (push request or CloudEvent -> Message), push
(raw push requests ahead of functions-framework), pool (database connections), group_commit
(concurrent messages written in one statement), quarantine (poison messages), ingestor
(orchestration; frames are checked by ess.frame_checks). Errors and their reason codes: errors."""

from .ingestor import handle_cloud_event, handle_push_body, warm

__all__ = ["handle_cloud_event", "handle_push_body", "warm"]
