"""The serving process's own settings: what `hiapi-mock serve` does to the process."""

from __future__ import annotations

import subprocess
import sys

_PROBE = """
import gc
from mock_server.server import freeze_survivors

before = len(gc.callbacks)
gc.collect()
assert gc.get_freeze_count() == 0, "nothing is frozen before"
freeze_survivors()
freeze_survivors()
held = [{"task": n} for n in range(10_000)]
gc.collect()
frozen = gc.get_freeze_count()
garbage = []
garbage.append(garbage)
del garbage
thresholds = ','.join(map(str, gc.get_threshold()))
print(len(gc.callbacks) - before, frozen >= len(held), gc.collect() >= 1, thresholds)
"""


def test_a_serving_process_freezes_what_survives_a_full_collection_and_still_collects() -> None:
    # In a process of its own: the setting is the whole process's.
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    installed, frozen, collected, thresholds = done.stdout.split()
    assert installed == "1"  # installed once, however often asked
    assert frozen == "True"  # the survivors are out of later collections
    assert collected == "True"  # new garbage cycles are still collected
    assert thresholds == "300,5,1"  # small generations: short pauses
