"""Cloud Run function `export` (HTTP, called daily by Cloud Scheduler with an OIDC token).

POST {"date": "YYYY-MM-DD", "site": "site-a", "format": "csv"}, all optional: writes the day's
files (csv, csv.gz or parquet) and manifest to ESS_EXPORT_BUCKET. Logic: ess_functions.export.
"""

import functions_framework
from ess.logs import setup_logging
from ess_functions.export.http import handle
from ess_functions.trace import request_trace

setup_logging("export", trace=request_trace)


@functions_framework.http
def export(request):
    return handle(request)
