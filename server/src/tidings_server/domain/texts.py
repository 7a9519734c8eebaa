"""The one bound on error text tidings records: a render's exception, an HTTP failure, a hook's
disabling reason. Kept whole they can be megabytes (an exception carrying a body), and a history
page of them would outgrow what a gRPC client accepts (4 MiB by default)."""

from __future__ import annotations

MAX_ERROR_CHARS = 4096
# What is left for text from outside (an exception's repr) once our words around it (which
# format, which plugin, "the retry window is over") are added: its note of what was cut survives.
MAX_QUOTED_CHARS = MAX_ERROR_CHARS - 512


def bound_error(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """``text`` if it is at most ``limit`` characters; else its start and a note of how much was
    cut, ``limit`` characters in all."""
    if len(text) <= limit:
        return text
    cut = len(text) - limit
    while True:  # the note's own length changes how much must go; settles in a step or two
        note = f" … [{cut:,} more characters cut]"
        kept = limit - len(note)
        if len(text) - kept == cut:
            return text[:kept] + note
        cut = len(text) - kept
