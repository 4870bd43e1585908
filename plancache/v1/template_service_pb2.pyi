import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from plancache.v1 import template_pb2 as _template_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TemplateFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TEMPLATE_FORMAT_UNSPECIFIED: _ClassVar[TemplateFormat]
    TEMPLATE_FORMAT_YAML: _ClassVar[TemplateFormat]
    TEMPLATE_FORMAT_JSONL: _ClassVar[TemplateFormat]
TEMPLATE_FORMAT_UNSPECIFIED: TemplateFormat
TEMPLATE_FORMAT_YAML: TemplateFormat
TEMPLATE_FORMAT_JSONL: TemplateFormat

class CreateCollectionRequest(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: _template_pb2.Collection
    def __init__(self, collection: _Optional[_Union[_template_pb2.Collection, _Mapping]] = ...) -> None: ...

class GetCollectionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListCollectionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListCollectionsResponse(_message.Message):
    __slots__ = ("collections",)
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    collections: _containers.RepeatedCompositeFieldContainer[_template_pb2.Collection]
    def __init__(self, collections: _Optional[_Iterable[_Union[_template_pb2.Collection, _Mapping]]] = ...) -> None: ...

class UpdateCollectionRequest(_message.Message):
    __slots__ = ("collection", "update_mask")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    collection: _template_pb2.Collection
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, collection: _Optional[_Union[_template_pb2.Collection, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class DeleteCollectionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteCollectionResponse(_message.Message):
    __slots__ = ("templates_deleted",)
    TEMPLATES_DELETED_FIELD_NUMBER: _ClassVar[int]
    templates_deleted: int
    def __init__(self, templates_deleted: _Optional[int] = ...) -> None: ...

class CreateTemplateRequest(_message.Message):
    __slots__ = ("template",)
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    template: _template_pb2.Template
    def __init__(self, template: _Optional[_Union[_template_pb2.Template, _Mapping]] = ...) -> None: ...

class GetTemplateRequest(_message.Message):
    __slots__ = ("collection", "template_id", "version")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    template_id: str
    version: int
    def __init__(self, collection: _Optional[str] = ..., template_id: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class ListTemplatesRequest(_message.Message):
    __slots__ = ("collection", "status", "tag", "page_size", "page_token")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    collection: str
    status: _template_pb2.TemplateStatus
    tag: str
    page_size: int
    page_token: str
    def __init__(self, collection: _Optional[str] = ..., status: _Optional[_Union[_template_pb2.TemplateStatus, str]] = ..., tag: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTemplatesResponse(_message.Message):
    __slots__ = ("templates", "next_page_token")
    TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    templates: _containers.RepeatedCompositeFieldContainer[_template_pb2.Template]
    next_page_token: str
    def __init__(self, templates: _Optional[_Iterable[_Union[_template_pb2.Template, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListTemplateVersionsRequest(_message.Message):
    __slots__ = ("collection", "template_id")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    collection: str
    template_id: str
    def __init__(self, collection: _Optional[str] = ..., template_id: _Optional[str] = ...) -> None: ...

class ListTemplateVersionsResponse(_message.Message):
    __slots__ = ("versions",)
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[_template_pb2.Template]
    def __init__(self, versions: _Optional[_Iterable[_Union[_template_pb2.Template, _Mapping]]] = ...) -> None: ...

class UpdateTemplateRequest(_message.Message):
    __slots__ = ("template", "expected_version")
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    template: _template_pb2.Template
    expected_version: int
    def __init__(self, template: _Optional[_Union[_template_pb2.Template, _Mapping]] = ..., expected_version: _Optional[int] = ...) -> None: ...

class RollbackTemplateRequest(_message.Message):
    __slots__ = ("collection", "template_id", "version")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    template_id: str
    version: int
    def __init__(self, collection: _Optional[str] = ..., template_id: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class SetTemplateStatusRequest(_message.Message):
    __slots__ = ("collection", "template_id", "status")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    template_id: str
    status: _template_pb2.TemplateStatus
    def __init__(self, collection: _Optional[str] = ..., template_id: _Optional[str] = ..., status: _Optional[_Union[_template_pb2.TemplateStatus, str]] = ...) -> None: ...

class DeleteTemplateRequest(_message.Message):
    __slots__ = ("collection", "template_id")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    collection: str
    template_id: str
    def __init__(self, collection: _Optional[str] = ..., template_id: _Optional[str] = ...) -> None: ...

class DeleteTemplateResponse(_message.Message):
    __slots__ = ("versions_deleted",)
    VERSIONS_DELETED_FIELD_NUMBER: _ClassVar[int]
    versions_deleted: int
    def __init__(self, versions_deleted: _Optional[int] = ...) -> None: ...

class InvalidateTemplatesRequest(_message.Message):
    __slots__ = ("collection", "tag", "older_than")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    OLDER_THAN_FIELD_NUMBER: _ClassVar[int]
    collection: str
    tag: str
    older_than: _duration_pb2.Duration
    def __init__(self, collection: _Optional[str] = ..., tag: _Optional[str] = ..., older_than: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class InvalidateTemplatesResponse(_message.Message):
    __slots__ = ("template_ids",)
    TEMPLATE_IDS_FIELD_NUMBER: _ClassVar[int]
    template_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, template_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class AddExemplarsRequest(_message.Message):
    __slots__ = ("collection", "template_id", "exemplars")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    EXEMPLARS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    template_id: str
    exemplars: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, collection: _Optional[str] = ..., template_id: _Optional[str] = ..., exemplars: _Optional[_Iterable[str]] = ...) -> None: ...

class AddExemplarsResponse(_message.Message):
    __slots__ = ("added", "duplicates")
    ADDED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    added: int
    duplicates: int
    def __init__(self, added: _Optional[int] = ..., duplicates: _Optional[int] = ...) -> None: ...

class ImportTemplatesRequest(_message.Message):
    __slots__ = ("content", "format", "source_name", "collection", "dry_run", "replace")
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_NAME_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    REPLACE_FIELD_NUMBER: _ClassVar[int]
    content: str
    format: TemplateFormat
    source_name: str
    collection: str
    dry_run: bool
    replace: bool
    def __init__(self, content: _Optional[str] = ..., format: _Optional[_Union[TemplateFormat, str]] = ..., source_name: _Optional[str] = ..., collection: _Optional[str] = ..., dry_run: _Optional[bool] = ..., replace: _Optional[bool] = ...) -> None: ...

class ImportTemplatesResponse(_message.Message):
    __slots__ = ("collection", "created", "updated", "exemplars")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    EXEMPLARS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    created: int
    updated: int
    exemplars: int
    def __init__(self, collection: _Optional[str] = ..., created: _Optional[int] = ..., updated: _Optional[int] = ..., exemplars: _Optional[int] = ...) -> None: ...

class ExportTemplatesRequest(_message.Message):
    __slots__ = ("collection", "format", "all_versions")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    ALL_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    format: TemplateFormat
    all_versions: bool
    def __init__(self, collection: _Optional[str] = ..., format: _Optional[_Union[TemplateFormat, str]] = ..., all_versions: _Optional[bool] = ...) -> None: ...

class ExportTemplatesResponse(_message.Message):
    __slots__ = ("content", "format")
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    content: str
    format: TemplateFormat
    def __init__(self, content: _Optional[str] = ..., format: _Optional[_Union[TemplateFormat, str]] = ...) -> None: ...
