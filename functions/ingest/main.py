"""Cloud Run function `ingest`: Pub/Sub push (messagePublished CloudEvent) -> one database.

Deployed once per sink (ESS_SINK=main|replica), each with its own push subscription.
Clients (sites config, database connections, storage) are created on first use and reused.
"""

import flask
import functions_framework
from ess_functions.ingest import handle_cloud_event, warm
from ess_functions.ingest.push import before_request

# Cloud Run routes traffic to an instance once its module has loaded: do start-up work here.
warm()
# Raw push bodies are read here, byte for byte, before functions-framework's CloudEvent parsing
# (which answers 400 to a bad body, so Pub/Sub would redeliver it until the dead-letter topic).
flask.current_app.before_request(before_request)


@functions_framework.cloud_event
def ingest(cloud_event):
    """Store the message's frames; raise (non-2xx, redelivery) only on retryable errors."""
    handle_cloud_event(cloud_event)
