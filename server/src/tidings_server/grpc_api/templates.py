"""The TemplateService servicer: decode, call the trio core, encode; nothing else."""

from __future__ import annotations

from google.protobuf import empty_pb2

from tidings.v1 import templates_pb2, templates_pb2_grpc
from tidings_server.domain.templates import TemplateService
from tidings_server.grpc_api import convert
from tidings_server.grpc_api.bridge import TrioBridge
from tidings_server.grpc_api.servicers import Context, Servicer


class TemplateServicer(Servicer, templates_pb2_grpc.TemplateServiceServicer):
    def __init__(self, bridge: TrioBridge, templates: TemplateService) -> None:
        super().__init__(bridge)
        self._templates = templates

    async def CreateTemplate(  # noqa: N802 - gRPC method names
        self, request: templates_pb2.CreateTemplateRequest, context: Context
    ) -> templates_pb2.Template:
        given = await self._decode(context, lambda: convert.definition_inputs(request.template))
        template = await self._call(
            context,
            self._templates.create_template,
            request.parent,
            request.template_id,
            request.template.display_name,
            given,
        )
        return convert.template(template)

    async def GetTemplate(  # noqa: N802
        self, request: templates_pb2.GetTemplateRequest, context: Context
    ) -> templates_pb2.Template:
        return convert.template(await self._call(context, self._templates.get_template, request.name))

    async def ListTemplates(  # noqa: N802
        self, request: templates_pb2.ListTemplatesRequest, context: Context
    ) -> templates_pb2.ListTemplatesResponse:
        page = await self._call(
            context, self._templates.list_templates, request.parent, request.page_size, request.page_token
        )
        return templates_pb2.ListTemplatesResponse(
            templates=[convert.template(t) for t in page.items], next_page_token=page.next_page_token
        )

    async def UpdateTemplate(  # noqa: N802
        self, request: templates_pb2.UpdateTemplateRequest, context: Context
    ) -> templates_pb2.Template:
        mask = list(request.update_mask.paths)
        given = await self._decode(context, lambda: convert.definition_inputs(request.template))
        template = await self._call(
            context,
            self._templates.update_template,
            request.template.name,
            request.template.display_name,
            given,
            mask,
        )
        return convert.template(template)

    async def DeleteTemplate(  # noqa: N802
        self, request: templates_pb2.DeleteTemplateRequest, context: Context
    ) -> empty_pb2.Empty:
        await self._call(context, self._templates.delete_template, request.name)
        return empty_pb2.Empty()

    async def ApplyTemplate(  # noqa: N802
        self, request: templates_pb2.ApplyTemplateRequest, context: Context
    ) -> templates_pb2.ApplyTemplateResponse:
        applied = await self._call(context, self._templates.apply_template, request.template, request.project)
        return convert.applied(applied)
