"""The ``procore`` catalog: the bundled table, row for row, and strict parsing."""

from __future__ import annotations

from importlib.resources import files

import pytest

from tidings_procore.catalog import CatalogError, ProcoreCatalog, load_resources, parse_resources
from tidings_server.domain.model import ResourceType, Scope


def catalog_index() -> dict[tuple[str, str], ResourceType]:
    return {(r.scope.value, r.name): r for r in ProcoreCatalog().resources()}


def test_catalog_is_named_procore() -> None:
    assert ProcoreCatalog().name == "procore"


def test_counts_per_scope() -> None:
    resources = list(ProcoreCatalog().resources())
    assert len(resources) == 121
    assert sum(r.scope is Scope.COMPANY for r in resources) == 25
    assert sum(r.scope is Scope.PROJECT for r in resources) == 96
    assert len(catalog_index()) == 121


def test_every_bundled_row_is_listed_exactly() -> None:
    text = files("tidings_procore").joinpath("resources.tsv").read_text(encoding="utf-8")
    rows = [line.split("\t") for line in text.splitlines()[1:]]
    assert len(rows) == 121
    index = catalog_index()
    for scope, name, event_types in rows:
        resource = index[(scope, name)]
        assert resource.event_types == frozenset(event_types.split(","))
        assert isinstance(resource.event_types, frozenset)
        assert resource.payload_formats is None


@pytest.mark.parametrize(
    ("scope", "name", "event_types"),
    [
        ("project", "RFIs", {"create", "update", "delete"}),
        ("company", "Bids", {"update"}),
        ("company", "Company Users", {"create", "update"}),
        ("company", "Trades", {"create", "delete"}),
        ("project", "Budget View Snapshots", {"create"}),
    ],
)
def test_known_resources(scope: str, name: str, event_types: set[str]) -> None:
    assert catalog_index()[(scope, name)].event_types == frozenset(event_types)


def test_bundled_table_is_parsed_once() -> None:
    assert load_resources() is load_resources()


def test_parses_a_well_formed_table() -> None:
    text = "scope\tresource_name\tevent_types\ncompany\tBids\tupdate\nproject\tRFIs\tcreate,delete\n"
    assert parse_resources(text) == (
        ResourceType("Bids", Scope.COMPANY, frozenset({"update"})),
        ResourceType("RFIs", Scope.PROJECT, frozenset({"create", "delete"})),
    )


HEADER = "scope\tresource_name\tevent_types\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("scope,resource_name,event_types\n", "line 1: expected the header"),
        (HEADER + "company\tBids\n", "line 2: expected 3 tab-separated fields, got 2"),
        (HEADER + "company\tBids\tupdate\textra\n", "line 2: expected 3 tab-separated fields, got 4"),
        (HEADER + "company\tBids\tupdate\n\nproject\tRFIs\tcreate\n", "line 3: expected 3"),
        (HEADER + "company\tBids\tupdate\norganization\tRFIs\tcreate\n", "line 3: unknown scope 'organization'"),
        (HEADER + "project\t\tcreate\n", "line 2: resource name '' is empty"),
        (HEADER + "project\t RFIs\tcreate\n", "line 2: resource name ' RFIs'"),
        (HEADER + "project\tRFIs\t\n", "line 2: invalid event type ''"),
        (HEADER + "project\tRFIs\tcreate,,delete\n", "line 2: invalid event type ''"),
        (HEADER + "project\tRFIs\tcreate, update\n", "line 2: invalid event type ' update'"),
        (HEADER + "project\tRFIs\tcreate\r\n", "line 2: invalid event type 'create\\\\r'"),
        (HEADER + "project\tRFIs\tcreate,create\n", "line 2: repeated event type"),
        (
            HEADER + "project\tRFIs\tcreate\nproject\tRFIs\tupdate\n",
            "line 3: project resource 'RFIs' already listed on line 2",
        ),
    ],
)
def test_malformed_tables_name_the_line(text: str, message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        parse_resources(text, "resources.tsv")


def test_the_same_name_may_appear_in_both_scopes() -> None:
    text = HEADER + "company\tFiles\tcreate\nproject\tFiles\tupdate\n"
    assert [r.scope for r in parse_resources(text)] == [Scope.COMPANY, Scope.PROJECT]
