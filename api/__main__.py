"""`python -m api` is `permitpulse`."""

import sys

from api.cli import main

sys.exit(main())
