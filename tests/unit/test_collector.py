"""The serving process's collector settings, checked in a fresh interpreter (they are global)."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import gc
import weakref
from tidings_server import collector

class Cycle:
    pass

def garbage() -> weakref.ref:
    a, b = Cycle(), Cycle()
    a.other, b.other = b, a
    return weakref.ref(a)

kept = [object() for _ in range(1000)]
start_up = garbage()
collector.settle()
print(gc.get_freeze_count() >= 1000, gc.get_threshold() == (collector.YOUNG_THRESHOLD, *collector.OLDER_THRESHOLDS))
print(start_up() is None)  # start-up's garbage was collected, not frozen
later = garbage()
gc.collect()
print(later() is None)  # cycles made after start-up are still found
"""


def test_settle_freezes_start_up_and_still_collects_later_cycles() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "True", "True", "True"]
