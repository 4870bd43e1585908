"""Everything in a Qdrant server or cluster, reached by URL through qdrant-client.

Four Qdrant collections, named after ``prefix`` (``plancache`` by default):

    {prefix}_exemplars     one point per exemplar: the vector (cosine, the
                           store's dimension) and payload collection,
                           template_id, kind, status (keyword-indexed), text,
                           key, source
    {prefix}_collections   one payload-only point per plancache collection
    {prefix}_templates     one payload-only point per template version
    {prefix}_counters      one payload-only point per template's counters

Every field a filter uses is keyword-indexed (a cluster in strict mode
refuses unindexed filters). Payload-only points carry a 1-d placeholder
vector (Qdrant needs a vector config) and have uuid5 ids of their natural
keys, so every replica computes the same id for the same record. Nothing is
kept in the process, so several plancache replicas can share one Qdrant.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from plancache.errors import (
    ConfigurationError,
    ConflictError,
    NotFoundError,
    PlancacheError,
    StoreError,
)
from plancache.store._base import Counters, Exemplar, ExemplarHit
from plancache.templates import Collection, Template, TemplateStatus

_T = TypeVar("_T")

_RECORD_NAMESPACE = uuid.UUID("0b9c7f43-2a51-4d4e-8f0e-6c1d2b3a4f5e")
_PLACEHOLDER = [1.0]
_BATCH = 256
_PAGE = 1024


def _record_id(*parts: object) -> str:
    return str(uuid.uuid5(_RECORD_NAMESPACE, "\x00".join(str(p) for p in parts)))


def _match(key: str, value: str | int) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def _where(collection: str, template_id: str | None = None, **fields: str) -> models.Filter:
    must: list[models.Condition] = [_match("collection", collection)]
    if template_id is not None:
        must.append(_match("template_id", template_id))
    must += [_match(key, value) for key, value in fields.items()]
    return models.Filter(must=must)


class QdrantServerStore:
    """Collections, templates and exemplars in a Qdrant server or cluster.

    ``url`` (and ``api_key``) reach the server; tests pass ``client`` instead,
    e.g. ``QdrantClient(location=":memory:")``, which runs the same calls
    through qdrant-client's local mode. ``close()`` closes the client, also
    one passed in.

    Limits of a store shared by several replicas (Qdrant has no
    transactions):

    - Counters are read, added to and written back. Increments from one
      process are serialized, but two replicas bumping the same template at
      the same moment can lose one of the increments. Counters are
      statistics; treat them as approximate under concurrent writers.
    - ``write_templates`` is all-or-nothing by compensation: on a failure the
      points it wrote are deleted and the exemplars' status restored. A
      replica that dies midway can leave a partial write behind; writing the
      same templates again repairs it. Two replicas writing the same version
      of a template: the second gets ConflictError (template versions are
      inserted with ``update_mode=insert_only``, Qdrant 1.17 or later; an
      older server overwrites instead).
    - Between the writes of one call, other replicas can read a state in
      between (e.g. a new version whose exemplars are still being stored).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        dimension: int,
        api_key: str | None = None,
        prefix: str = "plancache",
        client: QdrantClient | None = None,
    ) -> None:
        if client is None and not url:
            raise ConfigurationError("QdrantServerStore needs the URL of a Qdrant server (or a client)")
        if dimension <= 0:
            raise ConfigurationError(f"dimension must be positive, got {dimension}")
        self._dimension = dimension
        self._where_text = url or _describe(client)
        self._exemplars_name = f"{prefix}_exemplars"
        self._collections_name = f"{prefix}_collections"
        self._templates_name = f"{prefix}_templates"
        self._counters_name = f"{prefix}_counters"
        self._lock = threading.RLock()
        self._closed = False
        created = client is None
        if client is None:
            try:
                client = QdrantClient(url=url, api_key=api_key)
            except Exception as exc:
                raise StoreError(f"cannot use Qdrant URL {url!r}: {exc}") from exc
        self._client = client
        try:
            self._ensure_collections()
        except BaseException:
            if created:
                self._client.close()
            raise

    # -- plumbing ----------------------------------------------------------

    def _call(self, what: str, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Run one qdrant-client call; its failures become StoreError."""
        if self._closed:
            raise StoreError("the Qdrant store is closed")
        try:
            return fn(*args, **kwargs)
        except PlancacheError:
            raise
        except UnexpectedResponse as exc:
            raise StoreError(self._http_message(what, exc)) from exc
        except ResponseHandlingException as exc:
            raise StoreError(
                f"cannot reach Qdrant at {self._where_text} to {what}: {exc.source!r} "
                "(is the server running and the URL right?)"
            ) from exc
        except OSError as exc:
            raise StoreError(
                f"cannot reach Qdrant at {self._where_text} to {what}: {exc!r} "
                "(is the server running and the URL right?)"
            ) from exc
        except Exception as exc:
            raise StoreError(self._other_message(what, exc)) from exc

    def _http_message(self, what: str, exc: UnexpectedResponse) -> str:
        code = exc.status_code
        detail = exc.content[:300].decode("utf-8", "replace") if exc.content else ""
        if code in (401, 403):
            return (
                f"Qdrant at {self._where_text} refused to {what} (HTTP {code}): "
                "check the API key and its permissions"
            )
        return f"Qdrant at {self._where_text} failed to {what}: HTTP {code} {exc.reason_phrase} {detail}".rstrip()

    def _other_message(self, what: str, exc: Exception) -> str:
        try:
            import grpc

            if isinstance(exc, grpc.RpcError):
                code = exc.code()  # type: ignore[attr-defined]
                if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    return (
                        f"cannot reach Qdrant at {self._where_text} to {what}: {code.name} "
                        "(is the server running and the URL right?)"
                    )
                if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                    return (
                        f"Qdrant at {self._where_text} refused to {what} ({code.name}): "
                        "check the API key and its permissions"
                    )
                return f"Qdrant at {self._where_text} failed to {what}: {code.name} {exc.details()}"  # type: ignore[attr-defined]
        except ImportError:  # pragma: no cover - grpc comes with qdrant-client
            pass
        return f"Qdrant at {self._where_text} failed to {what}: {type(exc).__name__}: {exc}"

    def _ensure_collections(self) -> None:
        keyword = models.PayloadSchemaType.KEYWORD
        layout: list[tuple[str, int, models.Distance, dict[str, models.PayloadSchemaType]]] = [
            (
                self._exemplars_name, self._dimension, models.Distance.COSINE,
                {"collection": keyword, "template_id": keyword, "kind": keyword, "status": keyword},
            ),
            (self._collections_name, 1, models.Distance.DOT, {}),
            (
                self._templates_name, 1, models.Distance.DOT,
                {"collection": keyword, "template_id": keyword, "writer": keyword},
            ),
            (
                self._counters_name, 1, models.Distance.DOT,
                {"collection": keyword, "template_id": keyword},
            ),
        ]
        for name, size, distance, indexes in layout:
            if not self._call(f"check collection {name}", self._client.collection_exists, name):
                try:
                    self._call(
                        f"create collection {name}",
                        self._client.create_collection,
                        name,
                        vectors_config=models.VectorParams(size=size, distance=distance),
                    )
                except StoreError:
                    # Another replica may have created it at the same moment.
                    if not self._call(f"check collection {name}", self._client.collection_exists, name):
                        raise
            info = self._call(f"read collection {name}", self._client.get_collection, name)
            stored = info.config.params.vectors
            stored_size = getattr(stored, "size", None)
            if stored_size != size:
                raise StoreError(
                    f"Qdrant collection {name!r} at {self._where_text} holds vectors of size "
                    f"{stored_size}, this store is configured for {size}; use another prefix, "
                    "or delete that collection and import the templates again"
                )
            present = set(info.payload_schema or {})
            for field, schema in indexes.items():
                if field in present:
                    continue
                with warnings.catch_warnings():
                    # qdrant-client's local mode accepts the call and ignores it.
                    warnings.filterwarnings("ignore", message="Payload indexes have no effect")
                    self._call(
                        f"index field {field} of {name}",
                        self._client.create_payload_index,
                        name, field_name=field, field_schema=schema,
                    )

    def _scroll(
        self,
        name: str,
        flt: models.Filter | None,
        *,
        with_payload: bool | list[str] = True,
        with_vectors: bool = False,
    ) -> Iterator[models.Record]:
        offset: Any = None
        while True:
            records, offset = self._call(
                f"read {name}",
                self._client.scroll,
                name,
                scroll_filter=flt,
                limit=_PAGE,
                offset=offset,
                with_payload=with_payload,
                with_vectors=with_vectors,
            )
            yield from records
            if offset is None:
                return

    def _upsert(self, name: str, points: list[models.PointStruct], **kwargs: Any) -> None:
        for start in range(0, len(points), _BATCH):
            self._call(
                f"write to {name}", self._client.upsert, name,
                points=points[start : start + _BATCH], wait=True, **kwargs,
            )

    def _delete(self, name: str, selector: models.Filter | list[str]) -> None:
        if isinstance(selector, models.Filter):
            points: Any = models.FilterSelector(filter=selector)
        else:
            if not selector:
                return
            points = models.PointIdsList(points=list(selector))
        self._call(f"delete from {name}", self._client.delete, name, points_selector=points, wait=True)

    def _set_status(self, collection: str, template_id: str, status: str) -> None:
        self._set_statuses(collection, {template_id: status})

    def _set_statuses(self, collection: str, statuses: dict[str, str]) -> None:
        """Set the status payload of the templates' exemplars: one request per status."""
        by_status: dict[str, list[str]] = {}
        for template_id, status in statuses.items():
            by_status.setdefault(status, []).append(template_id)
        for status, template_ids in by_status.items():
            for start in range(0, len(template_ids), _BATCH):
                chunk = template_ids[start : start + _BATCH]
                flt = models.Filter(
                    must=[
                        _match("collection", collection),
                        models.FieldCondition(key="template_id", match=models.MatchAny(any=chunk)),
                    ]
                )
                self._call(
                    "update exemplar status",
                    self._client.set_payload,
                    self._exemplars_name,
                    payload={"status": status},
                    points=models.FilterSelector(filter=flt),
                    wait=True,
                )

    def _require_collection(self, name: str) -> None:
        found = self._call(
            "read collections", self._client.retrieve, self._collections_name,
            [_record_id("collection", name)], with_payload=False,
        )
        if not found:
            raise NotFoundError(f"collection {name!r} does not exist")

    def _points(
        self, collection: str, exemplars: Sequence[Exemplar], status: dict[str, str]
    ) -> list[models.PointStruct]:
        points = []
        for ex in exemplars:
            vector = np.asarray(ex.vector)
            if vector.shape != (self._dimension,):
                raise StoreError(
                    f"exemplar vector has shape {vector.shape}, the store holds {self._dimension}"
                )
            points.append(
                models.PointStruct(
                    id=ex.id,
                    vector=vector.astype(np.float32).tolist(),
                    payload={
                        "collection": collection,
                        "template_id": ex.template_id,
                        "text": ex.text,
                        "key": ex.key,
                        "kind": ex.kind,
                        "source": ex.source,
                        "status": status.get(ex.template_id, TemplateStatus.DISABLED.value),
                    },
                )
            )
        return points

    def _existing_ids(self, name: str, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(ids), _PAGE):
            records = self._call(
                f"read {name}", self._client.retrieve, name, list(ids[start : start + _PAGE]),
                with_payload=False,
            )
            found |= {str(r.id) for r in records}
        return found

    def _current_or_raise(self, collection: str, template_id: str) -> tuple[str, Template]:
        current = self._current(collection, template_id)
        if current is None:
            self._require_collection(collection)
            raise NotFoundError(
                f"template {template_id!r} does not exist in collection {collection!r}"
            )
        return current

    def _stored_statuses(self, collection: str, template_ids: set[str]) -> dict[str, str]:
        """The status of the current version of each of ``template_ids`` that is stored."""
        latest: dict[str, tuple[int, str]] = {}
        ids = sorted(template_ids)
        for start in range(0, len(ids), _BATCH):
            flt = models.Filter(
                must=[
                    _match("collection", collection),
                    models.FieldCondition(
                        key="template_id", match=models.MatchAny(any=ids[start : start + _BATCH])
                    ),
                ]
            )
            for record in self._scroll(
                self._templates_name, flt, with_payload=["template_id", "version", "status"]
            ):
                payload = record.payload or {}
                known = latest.get(payload["template_id"])
                if known is None or payload["version"] > known[0]:
                    latest[payload["template_id"]] = (payload["version"], payload["status"])
        return {template_id: status for template_id, (_, status) in latest.items()}

    def _current(self, collection: str, template_id: str) -> tuple[str, Template] | None:
        """The point id and body of a template's highest version, or None."""
        best: models.Record | None = None
        for record in self._scroll(
            self._templates_name, _where(collection, template_id), with_payload=["version", "body"]
        ):
            if best is None or (record.payload or {})["version"] > (best.payload or {})["version"]:
                best = record
        if best is None:
            return None
        return str(best.id), Template.model_validate_json((best.payload or {})["body"])

    # -- collections -------------------------------------------------------

    def create_collection(self, collection: Collection) -> None:
        point_id = _record_id("collection", collection.name)
        writer = uuid.uuid4().hex
        with self._lock:
            if self._existing_ids(self._collections_name, [point_id]):
                raise ConflictError(f"collection {collection.name!r} already exists")
            self._upsert(
                self._collections_name,
                [
                    models.PointStruct(
                        id=point_id,
                        vector=_PLACEHOLDER,
                        payload={
                            "name": collection.name,
                            "body": collection.model_dump_json(),
                            "writer": writer,
                        },
                    )
                ],
                update_mode=models.UpdateMode.INSERT_ONLY,
            )
            stored = self._call(
                "read collections", self._client.retrieve, self._collections_name, [point_id],
                with_payload=["writer"],
            )
            if not stored or (stored[0].payload or {}).get("writer") != writer:
                raise ConflictError(f"collection {collection.name!r} already exists")

    def get_collection(self, name: str) -> Collection:
        found = self._call(
            "read collections", self._client.retrieve, self._collections_name,
            [_record_id("collection", name)], with_payload=["body"],
        )
        if not found:
            raise NotFoundError(f"collection {name!r} does not exist")
        return Collection.model_validate_json((found[0].payload or {})["body"])

    def list_collections(self) -> list[Collection]:
        found = [
            Collection.model_validate_json((r.payload or {})["body"])
            for r in self._scroll(self._collections_name, None, with_payload=["body"])
        ]
        return sorted(found, key=lambda c: c.name)

    def save_collection(self, collection: Collection) -> None:
        point_id = _record_id("collection", collection.name)
        with self._lock:
            self._require_collection(collection.name)
            self._call(
                "update collection",
                self._client.set_payload,
                self._collections_name,
                payload={"body": collection.model_dump_json()},
                points=models.PointIdsList(points=[point_id]),
                wait=True,
            )

    def delete_collection(self, name: str) -> int:
        with self._lock:
            self._require_collection(name)
            template_ids = {
                (r.payload or {})["template_id"]
                for r in self._scroll(self._templates_name, _where(name), with_payload=["template_id"])
            }
            # The collection record goes last: a failure midway leaves it
            # listed, and deleting it again finishes the job.
            self._delete(self._exemplars_name, _where(name))
            self._delete(self._counters_name, _where(name))
            self._delete(self._templates_name, _where(name))
            self._delete(self._collections_name, [_record_id("collection", name)])
        return len(template_ids)

    # -- templates ---------------------------------------------------------

    def write_templates(
        self, collection: str, templates: Sequence[Template], exemplars: Sequence[Exemplar]
    ) -> None:
        with self._lock:
            self._require_collection(collection)
            version_ids: dict[str, Template] = {}
            for template in templates:
                point_id = _record_id("template", collection, template.id, template.version)
                if point_id in version_ids:
                    raise ConflictError(
                        f"template {template.id!r} version {template.version} is given twice"
                    )
                version_ids[point_id] = template
            stored_before = self._existing_ids(self._templates_name, list(version_ids))
            for point_id, template in version_ids.items():
                if point_id in stored_before:
                    raise _version_conflict(template)
            # The status of each stored template: what its exemplars have now,
            # and restore if the write fails.
            previous = self._stored_statuses(
                collection, {t.id for t in templates} | {ex.template_id for ex in exemplars}
            )
            status = {**previous, **{t.id: t.status.value for t in templates}}
            previous = {t.id: previous[t.id] for t in templates if t.id in previous}
            points = self._points(collection, exemplars, status)
            point_ids = list(dict.fromkeys(str(p.id) for p in points))
            new_ids = sorted(set(point_ids) - self._existing_ids(self._exemplars_name, point_ids))

            writer = uuid.uuid4().hex
            try:
                self._upsert(
                    self._templates_name,
                    [
                        models.PointStruct(
                            id=point_id,
                            vector=_PLACEHOLDER,
                            payload={
                                "collection": collection,
                                "template_id": template.id,
                                "version": template.version,
                                "status": template.status.value,
                                "body": template.model_dump_json(),
                                "writer": writer,
                            },
                        )
                        for point_id, template in version_ids.items()
                    ],
                    update_mode=models.UpdateMode.INSERT_ONLY,
                )
                stored = self._call(
                    "read templates", self._client.retrieve, self._templates_name,
                    list(version_ids), with_payload=["writer"],
                )
                theirs = [
                    version_ids[str(r.id)]
                    for r in stored
                    if (r.payload or {}).get("writer") != writer
                ]
                if theirs:
                    raise _version_conflict(theirs[0])
                # Exemplars kept from earlier versions follow the new status (a
                # template with no stored version has none; the new exemplars
                # are written with their status).
                self._set_statuses(
                    collection,
                    {t.id: t.status.value for t in templates if t.id in previous},
                )
                self._upsert(self._exemplars_name, points)
            except BaseException:
                self._undo_write(collection, list(version_ids), writer, new_ids, previous)
                raise

    def _undo_write(
        self,
        collection: str,
        version_ids: list[str],
        writer: str,
        exemplar_ids: list[str],
        previous: dict[str, str],
    ) -> None:
        """Best effort: remove what a failed write_templates stored."""
        steps: list[Callable[[], None]] = [
            lambda: self._delete(
                self._templates_name,
                models.Filter(
                    must=[
                        models.HasIdCondition(has_id=list[models.ExtendedPointId](version_ids)),
                        _match("writer", writer),
                    ]
                ),
            ),
            lambda: self._delete(self._exemplars_name, exemplar_ids),
            lambda: self._set_statuses(collection, previous),
        ]
        for step in steps:
            try:
                step()
            except Exception:  # the original failure is the one to report
                continue

    def get_template(self, collection: str, template_id: str, version: int = 0) -> Template:
        if not version:
            return self._current_or_raise(collection, template_id)[1]
        found = self._call(
            "read templates", self._client.retrieve, self._templates_name,
            [_record_id("template", collection, template_id, version)], with_payload=["body"],
        )
        if not found:
            self._require_collection(collection)
            raise NotFoundError(
                f"version {version} of template {template_id!r} does not exist in collection "
                f"{collection!r}"
            )
        return Template.model_validate_json((found[0].payload or {})["body"])

    def list_templates(self, collection: str) -> list[Template]:
        self._require_collection(collection)
        latest: dict[str, tuple[int, str]] = {}
        for record in self._scroll(
            self._templates_name, _where(collection), with_payload=["template_id", "version"]
        ):
            payload = record.payload or {}
            known = latest.get(payload["template_id"])
            if known is None or payload["version"] > known[0]:
                latest[payload["template_id"]] = (payload["version"], str(record.id))
        ids = [point_id for _, point_id in latest.values()]
        bodies: list[Template] = []
        for start in range(0, len(ids), _PAGE):
            found = self._call(
                "read templates", self._client.retrieve, self._templates_name,
                ids[start : start + _PAGE], with_payload=["body"],
            )
            bodies += [Template.model_validate_json((r.payload or {})["body"]) for r in found]
        return sorted(bodies, key=lambda t: t.id)

    def list_versions(self, collection: str, template_id: str) -> list[Template]:
        found = [
            Template.model_validate_json((r.payload or {})["body"])
            for r in self._scroll(
                self._templates_name, _where(collection, template_id), with_payload=["body"]
            )
        ]
        if not found:
            self.get_template(collection, template_id)
        return sorted(found, key=lambda t: t.version)

    def set_status(self, collection: str, template_id: str, status: TemplateStatus) -> Template:
        with self._lock:
            point_id, template = self._current_or_raise(collection, template_id)
            changed = template.model_copy(update={"status": status})

            def write(body: Template) -> None:
                self._call(
                    "update template",
                    self._client.set_payload,
                    self._templates_name,
                    payload={"body": body.model_dump_json(), "status": body.status.value},
                    points=models.PointIdsList(points=[point_id]),
                    wait=True,
                )

            write(changed)
            try:
                self._set_status(collection, template_id, status.value)
            except BaseException:
                with contextlib.suppress(Exception):  # report the first failure
                    write(template)
                raise
        return changed

    def delete_template(self, collection: str, template_id: str) -> int:
        with self._lock:
            self.get_template(collection, template_id)
            count = sum(
                1
                for _ in self._scroll(
                    self._templates_name, _where(collection, template_id), with_payload=False
                )
            )
            # Versions go last: a failure midway leaves the template listed.
            self._delete(self._exemplars_name, _where(collection, template_id))
            self._delete(self._counters_name, [_record_id("counters", collection, template_id)])
            self._delete(self._templates_name, _where(collection, template_id))
        return count

    # -- exemplars ---------------------------------------------------------

    def add_exemplars(self, collection: str, exemplars: Sequence[Exemplar]) -> int:
        with self._lock:
            self._require_collection(collection)
            present = self._existing_ids(self._exemplars_name, [ex.id for ex in exemplars])
            fresh = list({ex.id: ex for ex in exemplars if ex.id not in present}.values())
            status = {
                template_id: self.get_template(collection, template_id).status.value
                for template_id in {ex.template_id for ex in fresh}
            }
            self._upsert(self._exemplars_name, self._points(collection, fresh, status))
        return len(fresh)

    def delete_exemplars(self, collection: str, exemplar_ids: Sequence[str]) -> int:
        with self._lock:
            self._require_collection(collection)
            ids = list(dict.fromkeys(exemplar_ids))
            stored: list[str] = []
            for start in range(0, len(ids), _PAGE):
                records = self._call(
                    "read exemplars", self._client.retrieve, self._exemplars_name,
                    ids[start : start + _PAGE], with_payload=["collection"],
                )
                # An id of another collection is not this call's to delete.
                stored += [str(r.id) for r in records if (r.payload or {}).get("collection") == collection]
            self._delete(self._exemplars_name, stored)
        return len(stored)

    def exemplars(
        self, collection: str, kind: str | None = None, template_id: str | None = None
    ) -> list[Exemplar]:
        flt = _where(collection, template_id, kind=kind) if kind else _where(collection, template_id)
        found: list[Exemplar] = []
        for record in self._scroll(self._exemplars_name, flt, with_payload=True, with_vectors=True):
            payload = record.payload or {}
            found.append(
                Exemplar(
                    collection=collection,
                    template_id=payload["template_id"],
                    text=payload.get("text", ""),
                    key=payload.get("key", ""),
                    vector=np.asarray(_plain_vector(record.vector), dtype=np.float32),
                    kind=payload.get("kind", "positive"),
                    source=payload.get("source", "curated"),
                )
            )
        return found

    def search(self, collection: str, vector: np.ndarray, limit: int) -> list[ExemplarHit]:
        response = self._call(
            "search exemplars",
            self._client.query_points,
            self._exemplars_name,
            query=np.asarray(vector, dtype=np.float32).tolist(),
            query_filter=_where(collection, kind="positive", status=TemplateStatus.ACTIVE.value),
            limit=limit,
            with_payload=["template_id", "text", "key"],
        )
        return [
            ExemplarHit(
                exemplar_id=str(p.id),
                template_id=(p.payload or {})["template_id"],
                text=(p.payload or {}).get("text", ""),
                key=(p.payload or {}).get("key", ""),
                score=float(p.score),
            )
            for p in response.points
        ]

    # -- counters ----------------------------------------------------------

    def counters(self, collection: str) -> dict[str, Counters]:
        return {
            (r.payload or {})["template_id"]: _counters(r.payload or {})
            for r in self._scroll(self._counters_name, _where(collection))
        }

    def bump_counters(
        self,
        collection: str,
        template_id: str,
        *,
        hits: int = 0,
        successes: int = 0,
        failures: int = 0,
        wrong_plan_reports: int = 0,
        saved_usd: float = 0.0,
        last_hit_at: datetime | None = None,
    ) -> None:
        point_id = _record_id("counters", collection, template_id)
        with self._lock:  # read-modify-write: not atomic across replicas (see class docstring)
            found = self._call(
                "read counters", self._client.retrieve, self._counters_name, [point_id]
            )
            now = _counters(found[0].payload or {}) if found else Counters()
            last = last_hit_at or now.last_hit_at
            payload = {
                "collection": collection,
                "template_id": template_id,
                "hits": now.hits + hits,
                "successes": now.successes + successes,
                "failures": now.failures + failures,
                "wrong_plan_reports": now.wrong_plan_reports + wrong_plan_reports,
                "saved_usd": now.saved_usd + saved_usd,
                "last_hit_at": last.isoformat() if last else None,
            }
            self._upsert(
                self._counters_name,
                [models.PointStruct(id=point_id, vector=_PLACEHOLDER, payload=payload)],
            )

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._client.close()
            except Exception as exc:
                raise StoreError(f"closing the Qdrant client for {self._where_text} failed: {exc}") from exc


def _version_conflict(template: Template) -> ConflictError:
    return ConflictError(
        f"template {template.id!r} version {template.version} is already stored "
        "(someone else changed it; read it again and retry)"
    )


def _counters(payload: dict[str, Any]) -> Counters:
    last = payload.get("last_hit_at")
    return Counters(
        hits=int(payload.get("hits", 0)),
        successes=int(payload.get("successes", 0)),
        failures=int(payload.get("failures", 0)),
        wrong_plan_reports=int(payload.get("wrong_plan_reports", 0)),
        saved_usd=float(payload.get("saved_usd", 0.0)),
        last_hit_at=datetime.fromisoformat(last) if last else None,
    )


def _plain_vector(vector: object) -> list[float]:
    if isinstance(vector, dict):
        vector = vector.get("") or next(iter(vector.values()))
    return list(vector)  # type: ignore[call-overload]


def _describe(client: QdrantClient | None) -> str:
    options = getattr(client, "init_options", None) or {}
    for key in ("url", "host", "path", "location"):
        if options.get(key):
            value = options[key]
            return f"local mode {value}" if key in ("path", "location") else str(value)
    return "the given client"
