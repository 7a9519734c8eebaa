"""Resource names (AIP-122): parsing, formatting and id rules for hooks and triggers.

Company and project ids are positive decimal integers, as Procore's are, written without
leading zeros so that one resource has exactly one name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tidings_server.domain.errors import InvalidArgument
from tidings_server.domain.quoting import quote

_INT = r"[1-9][0-9]{0,18}"
_HOOK_ID = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_PARENT_RE = re.compile(rf"companies/(?P<c>{_INT})(?:/projects/(?P<p>{_INT}|-))?")
_HOOK_RE = re.compile(rf"companies/(?P<c>{_INT})(?:/projects/(?P<p>{_INT}))?/hooks/(?P<h>{_HOOK_ID})")
_HOOK_ID_RE = re.compile(_HOOK_ID)
_TEMPLATE_RE = re.compile(rf"companies/(?P<c>{_INT})/templates/(?P<t>{_HOOK_ID})")
_COMPANY_RE = re.compile(rf"companies/(?P<c>{_INT})")
_PROJECT_RE = re.compile(rf"companies/(?P<c>{_INT})/projects/(?P<p>{_INT})")
_TRIGGER_ID_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,126})\.[a-z0-9_-]{1,64}")
MAX_ID = 2**63 - 1  # ids are signed 64-bit integers end to end (proto int64, SQLite INTEGER)

PARENT_FORMS = "companies/{company} or companies/{company}/projects/{project}"
HOOK_FORMS = "companies/{company}/hooks/{hook} or companies/{company}/projects/{project}/hooks/{hook}"


@dataclass(frozen=True, slots=True)
class Parent:
    """Where hooks live: a company, one of its projects, or (``any_project``) all of them."""

    company_id: int
    project_id: int | None = None
    any_project: bool = False

    def __str__(self) -> str:
        if self.any_project:
            return f"companies/{self.company_id}/projects/-"
        if self.project_id is None:
            return f"companies/{self.company_id}"
        return f"companies/{self.company_id}/projects/{self.project_id}"


def _id(text: str, field: str) -> int:
    value = int(text)
    if value > MAX_ID:
        raise InvalidArgument(f"{field}: id {text} is larger than {MAX_ID}")
    return value


def parse_parent(field: str, value: str, *, allow_any_project: bool = False) -> Parent:
    """Parse a hook collection's parent; ``-`` as project id is accepted only for listing."""
    m = _PARENT_RE.fullmatch(value)
    if m is None:
        raise InvalidArgument(f"{field}: {quote(value)} is not a valid parent; expected {PARENT_FORMS}")
    company = _id(m["c"], field)
    if m["p"] == "-":
        if not allow_any_project:
            raise InvalidArgument(f"{field}: the wildcard project '-' is only allowed when listing")
        return Parent(company, None, any_project=True)
    return Parent(company, None if m["p"] is None else _id(m["p"], field))


def parse_hook_name(field: str, value: str) -> tuple[Parent, str]:
    """Split a hook name into its parent and hook id."""
    m = _HOOK_RE.fullmatch(value)
    if m is None:
        raise InvalidArgument(f"{field}: {quote(value)} is not a valid hook name; expected {HOOK_FORMS}")
    parent = Parent(_id(m["c"], field), None if m["p"] is None else _id(m["p"], field))
    return parent, m["h"]


def check_hook_id(field: str, value: str, kind: str = "hook") -> str:
    """A hook id (or, with ``kind``, a template id: the same rule)."""
    if not _HOOK_ID_RE.fullmatch(value):
        raise InvalidArgument(
            f"{field}: {quote(value)} is not a valid {kind} id; use 1 to 63 lowercase letters, digits"
            " and hyphens, starting and ending with a letter or digit"
        )
    return value


def hook_name(parent: Parent, hook_id: str) -> str:
    return f"{parent}/hooks/{hook_id}"


def slug(resource_name: str) -> str:
    """A resource name as a name segment: ``Change Order Change Reasons`` → ``change-order-change-reasons``."""
    return re.sub(r"[^a-z0-9]+", "-", resource_name.lower()).strip("-")


def trigger_id(resource_name: str, event_type: str) -> str:
    """The stable id of a (resource, event type) pair, so the same pair always has one name."""
    return f"{slug(resource_name)}.{event_type}"


def trigger_name(hook: str, resource_name: str, event_type: str) -> str:
    return f"{hook}/triggers/{trigger_id(resource_name, event_type)}"


def check_trigger_name(field: str, value: str, hook: str) -> str:
    """Accept only a well-formed trigger name under ``hook``."""
    prefix = f"{hook}/triggers/"
    if not value.startswith(prefix):
        raise InvalidArgument(f"{field}: {quote(value)} is not a trigger of {hook}; expected {prefix}{{trigger}}")
    if not _TRIGGER_ID_RE.fullmatch(value[len(prefix) :]):
        raise InvalidArgument(
            f"{field}: {quote(value)} is not a valid trigger name; expected {prefix}{{resource}}.{{event_type}}"
        )
    return value


TEMPLATE_FORM = "companies/{company}/templates/{template}"


def parse_company(field: str, value: str) -> int:
    """The company id of ``companies/{company}`` (a template collection)."""
    m = _COMPANY_RE.fullmatch(value)
    if m is None:
        raise InvalidArgument(f"{field}: {quote(value)} is not a valid parent; expected companies/{{company}}")
    return _id(m["c"], field)


def parse_project(field: str, value: str) -> Parent:
    """``companies/{company}/projects/{project}``: one project (where a template is applied)."""
    m = _PROJECT_RE.fullmatch(value)
    if m is None:
        raise InvalidArgument(
            f"{field}: {quote(value)} is not a valid project; expected companies/{{company}}/projects/{{project}}"
        )
    return Parent(_id(m["c"], field), _id(m["p"], field))


def parse_template_name(field: str, value: str) -> tuple[int, str]:
    """Split a template name into its company id and template id."""
    m = _TEMPLATE_RE.fullmatch(value)
    if m is None:
        raise InvalidArgument(f"{field}: {quote(value)} is not a valid template name; expected {TEMPLATE_FORM}")
    return _id(m["c"], field), m["t"]


def check_template_id(field: str, value: str) -> str:
    return check_hook_id(field, value, "template")


def template_name(company_id: int, template_id: str) -> str:
    return f"companies/{company_id}/templates/{template_id}"
