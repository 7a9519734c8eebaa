"""CatalogService, health checking and reflection against a real server."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.harness import Api
from tidings.v1 import catalog_pb2


def test_list_resources_by_scope_with_paging(api: Api) -> None:
    seen: list[catalog_pb2.CatalogResource] = []
    token = ""
    while True:
        page = api.catalog.ListResources(
            catalog_pb2.ListResourcesRequest(scope=catalog_pb2.SCOPE_PROJECT, page_size=40, page_token=token)
        )
        seen += page.resources
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == 96
    assert [r.resource_name for r in seen] == sorted(r.resource_name for r in seen)
    rfis = next(r for r in seen if r.resource_name == "RFIs")
    assert (list(rfis.event_types), rfis.scope, rfis.catalog) == (
        ["create", "delete", "update"],
        catalog_pb2.SCOPE_PROJECT,
        "procore",
    )
    company = api.catalog.ListResources(
        catalog_pb2.ListResourcesRequest(scope=catalog_pb2.SCOPE_COMPANY, payload_format="procore.v2", page_size=1000)
    ).resources
    assert len([r for r in company if r.catalog == "procore"]) == 25
    # tidings' own catalog: the operational events an admin can be told of.
    assert {r.resource_name: sorted(r.event_types) for r in company if r.catalog == "tidings"} == {
        "Webhook Deliveries": ["discarded"],
        "Webhook Hooks": ["circuit_closed", "circuit_opened", "disabled"],
        "Webhook Templates": ["not_applied"],
    }
    assert {r.resource_name: list(r.event_types) for r in company}["Bids"] == ["update"]


def test_list_payload_formats_names_their_distribution(api: Api) -> None:
    formats = api.catalog.ListPayloadFormats(catalog_pb2.ListPayloadFormatsRequest()).payload_formats
    by_name = {f.name: f for f in formats}
    assert {"procore.v2", "procore.v3", "procore.v4"} <= set(by_name)
    v4 = by_name["procore.v4"]
    assert (v4.content_type, v4.distribution, v4.version) == ("application/json", "tidings-procore", "0.1.0")
    assert v4.description


@pytest.mark.parametrize(
    ("request_", "problem"),
    [
        (catalog_pb2.ListResourcesRequest(), "scope: required"),
        (catalog_pb2.ListResourcesRequest(scope=7), "scope: 7 is not a known scope"),  # type: ignore[arg-type]
        (
            catalog_pb2.ListResourcesRequest(scope=catalog_pb2.SCOPE_PROJECT, payload_format="procore.v9"),
            "payload_format: unknown payload format 'procore.v9'",
        ),
        (catalog_pb2.ListResourcesRequest(scope=catalog_pb2.SCOPE_PROJECT, page_size=-1), "page_size: must not be"),
        (catalog_pb2.ListResourcesRequest(scope=catalog_pb2.SCOPE_PROJECT, page_token="%%%"), "page_token"),
    ],
)
def test_list_resources_bad_input(api: Api, request_: catalog_pb2.ListResourcesRequest, problem: str) -> None:
    with pytest.raises(grpc.RpcError) as err:
        api.catalog.ListResources(request_)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert problem in (err.value.details() or "")


def test_page_token_is_bound_to_its_request(api: Api) -> None:
    page = api.catalog.ListResources(catalog_pb2.ListResourcesRequest(scope=catalog_pb2.SCOPE_PROJECT, page_size=5))
    with pytest.raises(grpc.RpcError) as err:
        api.catalog.ListResources(
            catalog_pb2.ListResourcesRequest(scope=catalog_pb2.SCOPE_COMPANY, page_token=page.next_page_token)
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "different request" in (err.value.details() or "")


def test_health_reports_every_service(api: Api) -> None:
    stub = health_pb2_grpc.HealthStub(api.channel)
    for service in ("", "tidings.v1.HookService", "tidings.v1.CatalogService"):
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, service


def test_reflection_lists_services(api: Api) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(api.channel)
    replies = list(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
    names = {s.name for s in replies[0].list_services_response.service}
    assert {"tidings.v1.HookService", "tidings.v1.CatalogService", "grpc.health.v1.Health"} <= names
    files = list(
        stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(file_containing_symbol="tidings.v1.HookService")])
        )
    )
    assert files[0].file_descriptor_response.file_descriptor_proto
