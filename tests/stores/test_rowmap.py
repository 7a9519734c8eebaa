"""The stored text of an attempt's headers: byte for byte what ``json.dumps`` made before, so
rows written by earlier versions and by this one read back alike."""

from __future__ import annotations

import json

import pytest

from tidings_server.stores import rowmap

CASES = [
    (),
    (("Content-Type", "application/json"),),
    (("X-Quote", 'say "hi"'), ("X-Backslash", "a\\b"), ("X-Empty", "")),
    (("X-Unicode", "café ünïcødé 漢字 🎉"), ("X-Controls", "\t\n\r\x00\x1f\x7f")),
    (("X-Separators", "\u2028\u2029"), ("X-Slash", "</script>")),
]


@pytest.mark.parametrize("headers", CASES)
def test_headers_text_is_what_json_dumps_makes(headers: tuple[tuple[str, str], ...]) -> None:
    text = rowmap.headers_text(headers)
    assert text == json.dumps(headers)
    assert rowmap.headers(text) == headers


def test_headers_text_refuses_what_is_not_text() -> None:
    with pytest.raises(TypeError):
        rowmap.headers_text((("X-Number", 5),))  # type: ignore[arg-type]
