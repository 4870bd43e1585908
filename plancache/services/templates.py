"""TemplateService: collections and templates for admins."""

from __future__ import annotations

import asyncio
import base64

import grpc

from plancache import auth
from plancache._status import translate_errors
from plancache.cache import PlanCache
from plancache.convert import (
    collection_from_proto,
    collection_to_proto,
    status_from_proto,
    template_from_proto,
    template_to_proto,
)
from plancache.errors import PermissionDeniedError, ValidationError
from plancache.store import Counters
from plancache.templates import Collection, Template
from plancache.v1 import template_pb2 as tpl_pb
from plancache.v1 import template_service_pb2 as pb
from plancache.v1 import template_service_pb2_grpc as pb_grpc

_FORMATS = {pb.TEMPLATE_FORMAT_YAML: "yaml", pb.TEMPLATE_FORMAT_JSONL: "jsonl"}
MAX_PAGE = 1000


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def _page_offset(token: str) -> int:
    if not token:
        return 0
    try:
        kind, _, value = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if kind != "o":
            raise ValueError(kind)
        return int(value)
    except ValueError as exc:
        raise ValidationError("page_token is not a token from a previous ListTemplates") from exc


class TemplateServicer(pb_grpc.TemplateServiceServicer):
    """Admin RPCs over PlanCache; blocking store work runs in a thread."""

    def __init__(self, cache: PlanCache) -> None:
        self._cache = cache

    def _collection_message(self, collection: Collection) -> tpl_pb.Collection:
        store = self._cache.store
        templates = store.list_templates(collection.name)
        exemplars = len(store.exemplars(collection.name, "positive"))
        return collection_to_proto(collection, len(templates), exemplars)

    def _current_message(self, template: Template) -> tpl_pb.Template:
        """The current version of a template, with its counters."""
        counters = self._cache.store.counters(template.collection).get(template.id, Counters())
        ttl = self._cache.collection_ttl(template.collection)
        return template_to_proto(template, ttl, counters)

    @translate_errors
    async def CreateCollection(self, request: pb.CreateCollectionRequest, context: grpc.aio.ServicerContext) -> tpl_pb.Collection:
        collection = collection_from_proto(request.collection)
        tenant = auth.caller_tenant()
        if tenant is not None:
            if collection.tenant not in ("", tenant):
                raise PermissionDeniedError(
                    f"this token may create collections of tenant {tenant!r} only; leave tenant empty"
                )
            collection = collection.model_copy(update={"tenant": tenant})
        created = await asyncio.to_thread(self._cache.create_collection, collection)
        return collection_to_proto(created)

    @translate_errors
    async def UpdateCollection(self, request: pb.UpdateCollectionRequest, context: grpc.aio.ServicerContext) -> tpl_pb.Collection:
        given = request.collection
        paths = list(request.update_mask.paths)
        if not paths:
            # No mask: every field the request gives; settings are replaced whole.
            paths = [p for p, present in (
                ("description", bool(given.description)),
                ("tenant", bool(given.tenant)),
                ("settings", given.HasField("settings")),
            ) if present]
        if "settings.default_ttl" in paths and not given.settings.default_ttl.ToTimedelta():
            raise ValidationError("settings.default_ttl: give a positive duration")
        if "settings.max_wrong_rate" in paths and not given.settings.max_wrong_rate:
            raise ValidationError("settings.max_wrong_rate: give a rate between 0 and 1 (e.g. 0.005)")
        tenant = auth.caller_tenant()
        if tenant is not None and "tenant" in paths and given.tenant != tenant:
            raise PermissionDeniedError("this token may not move a collection to another tenant")
        updated = await asyncio.to_thread(
            self._cache.update_collection, given.name, collection_from_proto(given), paths
        )
        return await asyncio.to_thread(self._collection_message, updated)

    @translate_errors
    async def GetCollection(self, request: pb.GetCollectionRequest, context: grpc.aio.ServicerContext) -> tpl_pb.Collection:
        collection = await asyncio.to_thread(self._cache.store.get_collection, request.name)
        return await asyncio.to_thread(self._collection_message, collection)

    @translate_errors
    async def ListCollections(self, request: pb.ListCollectionsRequest, context: grpc.aio.ServicerContext) -> pb.ListCollectionsResponse:
        collections = await asyncio.to_thread(self._cache.store.list_collections)
        messages = [
            await asyncio.to_thread(self._collection_message, c) for c in collections if auth.visible(c)
        ]
        return pb.ListCollectionsResponse(collections=messages)

    @translate_errors
    async def DeleteCollection(self, request: pb.DeleteCollectionRequest, context: grpc.aio.ServicerContext) -> pb.DeleteCollectionResponse:
        count = await asyncio.to_thread(self._cache.delete_collection, request.name)
        return pb.DeleteCollectionResponse(templates_deleted=count)

    @translate_errors
    async def CreateTemplate(self, request: pb.CreateTemplateRequest, context: grpc.aio.ServicerContext) -> tpl_pb.Template:
        template = template_from_proto(request.template)
        created = await asyncio.to_thread(self._cache.create_template, template)
        return await asyncio.to_thread(self._current_message, created)

    @translate_errors
    async def GetTemplate(self, request: pb.GetTemplateRequest, context: grpc.aio.ServicerContext) -> tpl_pb.Template:
        template = await asyncio.to_thread(
            self._cache.store.get_template, request.collection, request.template_id, request.version
        )
        if request.version:
            # a version asked for by number gets no counters: they are kept per template
            return template_to_proto(template, self._cache.collection_ttl(request.collection))
        return await asyncio.to_thread(self._current_message, template)

    @translate_errors
    async def ListTemplates(self, request: pb.ListTemplatesRequest, context: grpc.aio.ServicerContext) -> pb.ListTemplatesResponse:
        if request.page_size < 0:
            raise ValidationError("page_size must not be negative")
        size = min(request.page_size or 50, MAX_PAGE)
        offset = _page_offset(request.page_token)
        templates = await asyncio.to_thread(self._cache.store.list_templates, request.collection)
        wanted = status_from_proto(request.status)
        if wanted is None and request.status:
            raise ValidationError("status: set a TEMPLATE_STATUS_* value, or leave it unset for any")
        chosen = [
            t for t in templates
            if (wanted is None or t.status is wanted) and (not request.tag or request.tag in t.tags)
        ]
        page = chosen[offset : offset + size]
        ttl = self._cache.collection_ttl(request.collection)
        # one read for the whole collection, not one per template
        counters = await asyncio.to_thread(self._cache.store.counters, request.collection)
        more = offset + size < len(chosen)
        return pb.ListTemplatesResponse(
            templates=[template_to_proto(t, ttl, counters.get(t.id, Counters())) for t in page],
            next_page_token=_page_token(offset + size) if more else "",
        )

    @translate_errors
    async def ListTemplateVersions(self, request: pb.ListTemplateVersionsRequest, context: grpc.aio.ServicerContext) -> pb.ListTemplateVersionsResponse:
        versions = await asyncio.to_thread(
            self._cache.store.list_versions, request.collection, request.template_id
        )
        ttl = self._cache.collection_ttl(request.collection)
        return pb.ListTemplateVersionsResponse(versions=[template_to_proto(t, ttl) for t in versions])

    @translate_errors
    async def UpdateTemplate(self, request: pb.UpdateTemplateRequest, context: grpc.aio.ServicerContext) -> tpl_pb.Template:
        if not request.template.collection or not request.template.id:
            raise ValidationError("template.collection and template.id say which template to update")
        if request.expected_version < 0:
            raise ValidationError("expected_version must not be negative")
        template = template_from_proto(request.template)
        updated = await asyncio.to_thread(
            self._cache.update_template,
            template,
            expected_version=request.expected_version,
            status=status_from_proto(request.template.status),
        )
        return await asyncio.to_thread(self._current_message, updated)

    @translate_errors
    async def RollbackTemplate(self, request: pb.RollbackTemplateRequest, context: grpc.aio.ServicerContext) -> tpl_pb.Template:
        restored = await asyncio.to_thread(
            self._cache.rollback_template, request.collection, request.template_id, request.version
        )
        return await asyncio.to_thread(self._current_message, restored)

    @translate_errors
    async def SetTemplateStatus(self, request: pb.SetTemplateStatusRequest, context: grpc.aio.ServicerContext) -> tpl_pb.Template:
        status = status_from_proto(request.status)
        if status is None:
            raise ValidationError("status: set TEMPLATE_STATUS_ACTIVE or TEMPLATE_STATUS_DISABLED")
        changed = await asyncio.to_thread(
            self._cache.set_template_status, request.collection, request.template_id, status
        )
        return await asyncio.to_thread(self._current_message, changed)

    @translate_errors
    async def DeleteTemplate(self, request: pb.DeleteTemplateRequest, context: grpc.aio.ServicerContext) -> pb.DeleteTemplateResponse:
        count = await asyncio.to_thread(
            self._cache.delete_template, request.collection, request.template_id
        )
        return pb.DeleteTemplateResponse(versions_deleted=count)

    @translate_errors
    async def InvalidateTemplates(self, request: pb.InvalidateTemplatesRequest, context: grpc.aio.ServicerContext) -> pb.InvalidateTemplatesResponse:
        older_than = request.older_than.ToTimedelta() if request.HasField("older_than") else None
        disabled = await asyncio.to_thread(
            self._cache.invalidate_templates,
            request.collection,
            tag=request.tag,
            older_than=older_than or None,
        )
        return pb.InvalidateTemplatesResponse(template_ids=disabled)

    @translate_errors
    async def AddExemplars(self, request: pb.AddExemplarsRequest, context: grpc.aio.ServicerContext) -> pb.AddExemplarsResponse:
        if not request.exemplars:
            raise ValidationError("exemplars: give at least one phrasing")
        added, duplicates = await asyncio.to_thread(
            self._cache.add_exemplars, request.collection, request.template_id, list(request.exemplars)
        )
        return pb.AddExemplarsResponse(added=added, duplicates=duplicates)

    @translate_errors
    async def ImportTemplates(self, request: pb.ImportTemplatesRequest, context: grpc.aio.ServicerContext) -> pb.ImportTemplatesResponse:
        source = request.source_name or "<request>"
        if request.format not in (
            pb.TEMPLATE_FORMAT_UNSPECIFIED, pb.TEMPLATE_FORMAT_YAML, pb.TEMPLATE_FORMAT_JSONL
        ):
            raise ValidationError("format: set TEMPLATE_FORMAT_YAML or TEMPLATE_FORMAT_JSONL")
        if request.format == pb.TEMPLATE_FORMAT_JSONL and not source.endswith(".jsonl"):
            source += ".jsonl"
        result = await asyncio.to_thread(
            self._cache.import_file,
            request.content,
            source=source,
            collection=request.collection or None,
            dry_run=request.dry_run,
            replace=request.replace,
            tenant=auth.caller_tenant(),
        )
        return pb.ImportTemplatesResponse(
            collection=result.collection, created=result.created, updated=result.updated,
            exemplars=result.exemplars,
        )

    @translate_errors
    async def ExportTemplates(self, request: pb.ExportTemplatesRequest, context: grpc.aio.ServicerContext) -> pb.ExportTemplatesResponse:
        fmt = _FORMATS.get(request.format, "yaml")
        if request.all_versions and fmt != "jsonl":
            raise ValidationError(
                "all_versions needs format JSONL: a YAML collection file holds current versions only"
            )
        content = await asyncio.to_thread(
            self._cache.export, request.collection, fmt, request.all_versions
        )
        return pb.ExportTemplatesResponse(
            content=content,
            format=pb.TEMPLATE_FORMAT_JSONL if fmt == "jsonl" else pb.TEMPLATE_FORMAT_YAML,
        )
