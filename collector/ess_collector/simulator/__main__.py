"""`python -m ess_collector.simulator --port P [--banks N] [--faults FILE] [--units]`."""

import sys

from .server import main

sys.exit(main())
