"""The garbage collector of a serving process, set for a long-lived server.

Delivery makes no reference cycles worth collecting (profiles found none in runs of tens of
thousands of deliveries), yet the collector's full passes walked every object loaded at
start-up (modules, plugins, protobuf descriptors, gRPC) again and again, about 30 ms each.
Once the server is up, ``settle()`` moves what start-up made into the permanent generation,
which no collection walks, and raises the young generation's threshold so collections of the
objects each delivery leaves behind come less often. Cycles are still collected: only how
often, and over what, changes. See docs/performance.md for what it measured.
"""

from __future__ import annotations

import gc
from typing import Final

YOUNG_THRESHOLD: Final = 50_000  # allocations between young collections (CPython's default: 700)
OLDER_THRESHOLDS: Final = (20, 20)  # young collections per middle one, middle ones per full one


def settle() -> None:
    """Freeze what start-up allocated and space collections out; call once the server serves."""
    gc.collect()  # what start-up left as garbage goes now, not into the permanent generation
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
