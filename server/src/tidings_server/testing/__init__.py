"""The plugin author's kit: contract tests a payload-format plugin runs in its own repository.

::

    import pytest
    from tidings_server.testing import PayloadFormatContract

    class TestMyFormat(PayloadFormatContract):
        @pytest.fixture
        def payload_format(self):
            return MyFormat()

pytest then runs every check of ``PayloadFormatContract`` against ``MyFormat``: what the engine
enforces on each render (so a format that passes is never refused live), determinism, every
kind of event tidings publishes, and what signing needs from a body. ``sample_events()`` gives
the same events to the author's own tests. The kit needs pytest, which tidings-server itself
does not depend on; it is imported only by test suites.
"""

from __future__ import annotations

from tidings_server.testing.formats import PayloadFormatContract, render_checked, sample_events

__all__ = ["PayloadFormatContract", "render_checked", "sample_events"]
