"""`python -m contract check ...`, the same as `hiapi-contract check ...`."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
