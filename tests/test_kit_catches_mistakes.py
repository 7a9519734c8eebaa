"""The author's kit must fail formats that are wrong, each for the right reason: a contract that
passes everything would be worse than none. Each case runs the kit on a small broken format in
a pytest of its own (pytester) and checks which contract tests fail, and with what message."""

from __future__ import annotations

import textwrap

import pytest

pytest_plugins = ["pytester"]

HEADER = """
import json
import time

import pytest

from tidings_server.plugins.spec import RenderedPayload
from tidings_server.testing import PayloadFormatContract


class Format:
    name = "acme.v1"
    description = "A format under test."
    content_type = "application/json"

    def render(self, event, context):
        return RenderedPayload({"Content-Type": self.content_type}, self.body(event))

    def body(self, event):
        about = [event.resource_name, str(event.resource_id)]
        return json.dumps({"id": event.id, "about": about}, ensure_ascii=False).encode()


class TestFormat(PayloadFormatContract):
    @pytest.fixture
    def payload_format(self):
        return Broken()
"""
ALL_SAMPLES = 7


def run_kit(pytester: pytest.Pytester, broken: str) -> tuple[dict[str, int], str]:
    """Run the kit on class ``Broken`` (a Format subclass) and count failures per contract test."""
    pytester.makepyfile(test_acme=HEADER + "\n\n" + textwrap.dedent(broken))
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    failed: dict[str, int] = {}
    for line in result.outlines:
        if line.startswith("FAILED "):
            test = line.split("::")[2].split("[")[0].split(" ")[0]
            failed[test] = failed.get(test, 0) + 1
    return failed, "\n".join(result.outlines)


def test_a_correct_format_passes(pytester: pytest.Pytester) -> None:
    failed, output = run_kit(pytester, "class Broken(Format):\n    pass\n")
    assert failed == {}, output
    # 4 checks of what it declares, 5 per sample event, 2 on events with absent fields
    assert f"{4 + 5 * ALL_SAMPLES + 2} passed" in output


EVERY_RENDER_TEST = (
    "test_renders_every_kind_of_event_within_the_limits",
    "test_equal_events_render_to_equal_bytes",
    "test_body_names_the_changed_resource",
    "test_json_bodies_parse",
    "test_signature_verifies_over_the_exact_body",
)

CASES = {
    "nondeterministic": (
        """
        class Broken(Format):
            def body(self, event):
                return json.dumps([time.perf_counter_ns(), event.resource_name, event.resource_id]).encode()
        """,
        {"test_equal_events_render_to_equal_bytes": ALL_SAMPLES, "test_signature_verifies_over_the_exact_body": 7},
        "a retry would carry a different signature for the same event",
    ),
    "python-none": (
        """
        class Broken(Format):
            def body(self, event):
                return json.dumps([str(event.project_id), event.resource_name, event.resource_id]).encode()
        """,
        {"test_absent_fields_do_not_show_as_none": 1},  # the company-level event
        "sample company-level: an absent field is rendered as 'None'",
    ),
    "not-json": (
        """
        class Broken(Format):
            def body(self, event):
                return f"{event.resource_name} {event.resource_id}".encode()
        """,
        {"test_json_bodies_parse": ALL_SAMPLES},
        "the body is not JSON",
    ),
    "no-resource-name": (
        """
        class Broken(Format):
            def body(self, event):
                return json.dumps({"id": event.resource_id}).encode()
        """,
        {"test_body_names_the_changed_resource": ALL_SAMPLES},
        "is not in the body",
    ),
    "not-utf8": (
        """
        class Broken(Format):
            def body(self, event):
                return json.dumps([event.resource_name, event.resource_id], ensure_ascii=False).encode("utf-16")
        """,
        # JSON parsers accept UTF-16; the signature libraries, decoding UTF-8 first, do not.
        {"test_signature_verifies_over_the_exact_body": ALL_SAMPLES},
        "the body is not UTF-8, so signature libraries cannot verify it",
    ),
    "too-large": (
        """
        class Broken(Format):
            def body(self, event):
                names = [r.name for r in event.related_resources * 20]
                return json.dumps([event.resource_name, event.resource_id, *names]).encode()
        """,
        dict.fromkeys(EVERY_RENDER_TEST, 1),  # the event with 500 related resources
        "more than the 1048576 allowed",
    ),
    "bad-content-type": (
        """
        class Broken(Format):
            content_type = "json"
        """,
        {"test_content_type_is_a_media_type": 1},
        "'json': not a media type",
    ),
    "bad-name-and-description": (
        """
        class Broken(Format):
            name = "Acme Format"
            description = "two\\nlines"
        """,
        {"test_name_is_a_versioned_identifier": 1, "test_description_is_one_short_line": 1},
        "use lowercase dotted words ending in a version",
    ),
    "reserved-header": (
        """
        class Broken(Format):
            def render(self, event, context):
                return RenderedPayload({"Content-Type": self.content_type, "Webhook-Id": "x"}, self.body(event))
        """,
        {**dict.fromkeys(EVERY_RENDER_TEST, ALL_SAMPLES), "test_absent_fields_do_not_show_as_none": 2},
        "header 'Webhook-Id': reserved; tidings sets it",
    ),
    "content-type-mismatch": (
        """
        class Broken(Format):
            def render(self, event, context):
                return RenderedPayload({"Content-Type": "text/plain"}, self.body(event))
        """,
        {"test_renders_every_kind_of_event_within_the_limits": ALL_SAMPLES},
        "differs from content_type 'application/json'",
    ),
}


@pytest.mark.parametrize(("broken", "failures", "message"), list(CASES.values()), ids=list(CASES))
def test_a_broken_format_fails_the_right_checks(
    pytester: pytest.Pytester, broken: str, failures: dict[str, int], message: str
) -> None:
    failed, output = run_kit(pytester, broken)
    assert failed == failures, output
    assert message in output
