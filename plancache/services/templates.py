"""TemplateService: collections and templates for admins."""

from __future__ import annotations

import asyncio
import base64

import grpc

from plancache._status import translate_errors
from plancache.cache import PlanCache
from plancache.convert import (
    collection_from_proto,
    collection_to_proto,
    status_from_proto,
    template_from_proto,
    template_to_proto,
)
from plancache.errors import ValidationError
from plancache.templates import Collection
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

    @translate_errors
    async def CreateCollection(self, request: pb.CreateCollectionRequest, context: grpc.aio.ServicerContext) -> tpl_pb.Collection:
        collection = collection_from_proto(request.collection)
        created = await asyncio.to_thread(self._cache.create_collection, collection)
        return collection_to_proto(created)

    @translate_errors
    async def GetCollection(self, request: pb.GetCollectionRequest, context: grpc.aio.ServicerContext) -> tpl_pb.Collection:
        collection = await asyncio.to_thread(self._cache.store.get_collection, request.name)
        return await asyncio.to_thread(self._collection_message, collection)

    @translate_errors
    async def ListCollections(self, request: pb.ListCollectionsRequest, context: grpc.aio.ServicerContext) -> pb.ListCollectionsResponse:
        collections = await asyncio.to_thread(self._cache.store.list_collections)
        messages = [await asyncio.to_thread(self._collection_message, c) for c in collections]
        return pb.ListCollectionsResponse(collections=messages)

    @translate_errors
    async def DeleteCollection(self, request: pb.DeleteCollectionRequest, context: grpc.aio.ServicerContext) -> pb.DeleteCollectionResponse:
        count = await asyncio.to_thread(self._cache.delete_collection, request.name)
        return pb.DeleteCollectionResponse(templates_deleted=count)

    @translate_errors
    async def CreateTemplate(self, request: pb.CreateTemplateRequest, context: grpc.aio.ServicerContext) -> tpl_pb.Template:
        template = template_from_proto(request.template)
        created = await asyncio.to_thread(self._cache.create_template, template)
        return template_to_proto(created, self._cache.collection_ttl(created.collection))

    @translate_errors
    async def GetTemplate(self, request: pb.GetTemplateRequest, context: grpc.aio.ServicerContext) -> tpl_pb.Template:
        template = await asyncio.to_thread(
            self._cache.store.get_template, request.collection, request.template_id, request.version
        )
        return template_to_proto(template, self._cache.collection_ttl(request.collection))

    @translate_errors
    async def ListTemplates(self, request: pb.ListTemplatesRequest, context: grpc.aio.ServicerContext) -> pb.ListTemplatesResponse:
        if request.page_size < 0:
            raise ValidationError("page_size must not be negative")
        size = min(request.page_size or 50, MAX_PAGE)
        offset = _page_offset(request.page_token)
        templates = await asyncio.to_thread(self._cache.store.list_templates, request.collection)
        wanted = status_from_proto(request.status)
        chosen = [
            t for t in templates
            if (wanted is None or t.status is wanted) and (not request.tag or request.tag in t.tags)
        ]
        page = chosen[offset : offset + size]
        ttl = self._cache.collection_ttl(request.collection)
        more = offset + size < len(chosen)
        return pb.ListTemplatesResponse(
            templates=[template_to_proto(t, ttl) for t in page],
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
        if request.format == pb.TEMPLATE_FORMAT_JSONL and not source.endswith(".jsonl"):
            source += ".jsonl"
        result = await asyncio.to_thread(
            self._cache.import_file,
            request.content,
            source=source,
            collection=request.collection or None,
            dry_run=request.dry_run,
            replace=request.replace,
        )
        return pb.ImportTemplatesResponse(
            collection=result.collection, created=result.created, updated=result.updated,
            exemplars=result.exemplars,
        )

    @translate_errors
    async def ExportTemplates(self, request: pb.ExportTemplatesRequest, context: grpc.aio.ServicerContext) -> pb.ExportTemplatesResponse:
        fmt = _FORMATS.get(request.format, "yaml")
        content = await asyncio.to_thread(
            self._cache.export, request.collection, fmt, request.all_versions
        )
        return pb.ExportTemplatesResponse(
            content=content,
            format=pb.TEMPLATE_FORMAT_JSONL if fmt == "jsonl" else pb.TEMPLATE_FORMAT_YAML,
        )
