"""Cloud Run function `ingest`: Pub/Sub push (messagePublished CloudEvent) -> one database.

Deployed once per sink (ESS_SINK=main|replica), each with its own push subscription.
Clients (sites config, database connections, storage) are created on first use and reused.
"""

import functions_framework
from ess_functions.ingest import handle_cloud_event, warm

# Cloud Run routes traffic to an instance once its module has loaded: do start-up work here.
warm()


@functions_framework.cloud_event
def ingest(cloud_event):
    """Store the message's frames; raise (non-2xx, redelivery) only on retryable errors."""
    handle_cloud_event(cloud_event)
