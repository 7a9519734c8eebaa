"""The module the ``procore`` entry point names: it hands tidings the Procore formats and catalog."""

from __future__ import annotations

from tidings_procore.catalog import ProcoreCatalog
from tidings_procore.formats import FORMATS
from tidings_server.plugins.spec import PayloadFormat, ResourceCatalog, hookimpl


@hookimpl
def tidings_payload_formats() -> list[PayloadFormat]:
    return list(FORMATS)


@hookimpl
def tidings_resource_catalogs() -> list[ResourceCatalog]:
    return [ProcoreCatalog()]
