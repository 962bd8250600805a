"""`python -m mock_server.grading [options] -- COMMAND`: `hiapi-mock grade`, standalone."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
