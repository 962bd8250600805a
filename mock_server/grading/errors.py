"""The grading package's one exception root.

GradingError            a grading run that cannot start: an unknown scenario, no command,
                        a command that cannot be run
"""

from __future__ import annotations

__all__ = ["GradingError"]


class GradingError(ValueError):
    """A grading run that cannot start; the message says what to change."""
