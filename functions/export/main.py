"""Cloud Run function `export` (HTTP, called daily by Cloud Scheduler with an OIDC token).

POST {"date": "YYYY-MM-DD", "site": "site-a", "gzip": false}, all optional: writes the day's CSV
files and manifest to ESS_EXPORT_BUCKET. Logic: ess_functions.export; docs/export.md.
"""

import functions_framework
from ess.logs import setup_logging
from ess_functions.export_http import handle

setup_logging("export")


@functions_framework.http
def export(request):
    return handle(request)
