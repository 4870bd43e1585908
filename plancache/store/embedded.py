"""The embedded default store: SQLite for bodies, Qdrant's engine in-process for vectors.

Layout of the folder::

    plancache.db    SQLite (WAL): collections, template versions, counters
    vectors/        a qdrant-edge shard: one point per exemplar
    LOCK            held while a process has the store open

Qdrant's engine runs in this process (qdrant-edge), so a filtered nearest
neighbour query over 10k exemplars takes about a millisecond. qdrant-client's
local mode filters in Python and takes hundreds (see bench/store.py).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import numpy as np
import qdrant_edge as qe

from plancache.errors import ConflictError, NotFoundError, StoreError
from plancache.store._base import Counters, Exemplar, ExemplarHit
from plancache.templates import Collection, Template, TemplateStatus

_SCHEMA = """
CREATE TABLE IF NOT EXISTS collections (
    name TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS template_versions (
    collection TEXT NOT NULL,
    template_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (collection, template_id, version)
);
CREATE TABLE IF NOT EXISTS counters (
    collection TEXT NOT NULL,
    template_id TEXT NOT NULL,
    hits INTEGER NOT NULL DEFAULT 0,
    successes INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    wrong_plan_reports INTEGER NOT NULL DEFAULT 0,
    saved_usd REAL NOT NULL DEFAULT 0,
    last_hit_at TEXT,
    PRIMARY KEY (collection, template_id)
);
"""

_BATCH = 512


def _match(key: str, value: str) -> qe.FieldCondition:
    return qe.FieldCondition(key=key, match=qe.MatchValue(value))


class EmbeddedStore:
    """Collections, templates and exemplars in one local folder."""

    def __init__(self, path: str, *, dimension: int) -> None:
        self._path = os.path.abspath(path)
        self._dimension = dimension
        os.makedirs(self._path, exist_ok=True)
        self._lock_file = open(os.path.join(self._path, "LOCK"), "w")  # noqa: SIM115
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self._lock_file.close()
            raise StoreError(
                f"store {self._path} is open in another process; the embedded store has one "
                "owner (stop the other server, or use a Qdrant server by URL to share one)"
            ) from exc
        self._write_lock = threading.RLock()
        self._db = sqlite3.connect(
            os.path.join(self._path, "plancache.db"), check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._shard = self._open_shard(os.path.join(self._path, "vectors"))

    def _open_shard(self, path: str) -> qe.EdgeShard:
        config = qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=self._dimension, distance=qe.Distance.Cosine)
        )
        try:
            if os.path.isdir(path) and os.listdir(path):
                shard = qe.EdgeShard.load(path)
                stored = shard.info()
                del stored
            else:
                shard = qe.EdgeShard.create(path, config)
                for field, schema in (
                    ("collection", qe.PayloadSchemaType.Keyword),
                    ("template_id", qe.PayloadSchemaType.Keyword),
                    ("kind", qe.PayloadSchemaType.Keyword),
                    ("status", qe.PayloadSchemaType.Keyword),
                ):
                    shard.update(qe.UpdateOperation.create_field_index(field, schema))
                shard.flush()
        except Exception as exc:  # qdrant-edge raises plain exceptions
            raise StoreError(f"cannot open the vector shard at {path}: {exc}") from exc
        return shard

    # -- helpers -----------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._write_lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _vector_update(self, operation: qe.UpdateOperation) -> None:
        try:
            self._shard.update(operation)
        except Exception as exc:
            raise StoreError(f"vector store update failed: {exc}") from exc

    def _flush(self) -> None:
        try:
            self._shard.flush()
        except Exception as exc:
            raise StoreError(f"vector store flush failed: {exc}") from exc

    def _require_collection(self, name: str) -> None:
        row = self._db.execute("SELECT 1 FROM collections WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFoundError(f"collection {name!r} does not exist")

    def _points(
        self, collection: str, exemplars: Sequence[Exemplar], status: dict[str, str]
    ) -> list[qe.Point]:
        points = []
        for ex in exemplars:
            if ex.vector.shape != (self._dimension,):
                raise StoreError(
                    f"exemplar vector has shape {ex.vector.shape}, the store holds {self._dimension}"
                )
            payload: dict[str, Any] = {
                "collection": collection,
                "template_id": ex.template_id,
                "text": ex.text,
                "key": ex.key,
                "kind": ex.kind,
                "source": ex.source,
                # The template's status, so search filters out what is not
                # served (a keyword: qdrant-edge 0.9 does not match bools).
                "status": status.get(ex.template_id, TemplateStatus.DISABLED.value),
            }
            points.append(qe.Point(ex.id, ex.vector.astype(np.float32).tolist(), payload))
        return points

    def _template_filter(self, collection: str, template_id: str | None = None) -> qe.Filter:
        must: list[qe.ConditionType] = [_match("collection", collection)]
        if template_id is not None:
            must.append(_match("template_id", template_id))
        return qe.Filter(must=must)

    # -- collections -------------------------------------------------------

    def create_collection(self, collection: Collection) -> None:
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM collections WHERE name = ?", (collection.name,)).fetchone():
                raise ConflictError(f"collection {collection.name!r} already exists")
            db.execute(
                "INSERT INTO collections (name, body) VALUES (?, ?)",
                (collection.name, collection.model_dump_json()),
            )

    def get_collection(self, name: str) -> Collection:
        row = self._db.execute("SELECT body FROM collections WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFoundError(f"collection {name!r} does not exist")
        return Collection.model_validate_json(row[0])

    def list_collections(self) -> list[Collection]:
        rows = self._db.execute("SELECT body FROM collections ORDER BY name").fetchall()
        return [Collection.model_validate_json(body) for (body,) in rows]

    def save_collection(self, collection: Collection) -> None:
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE collections SET body = ? WHERE name = ?",
                (collection.model_dump_json(), collection.name),
            )
            if cursor.rowcount == 0:
                raise NotFoundError(f"collection {collection.name!r} does not exist")

    def delete_collection(self, name: str) -> int:
        with self._transaction() as db:
            self._require_collection(name)
            count = db.execute(
                "SELECT COUNT(DISTINCT template_id) FROM template_versions WHERE collection = ?",
                (name,),
            ).fetchone()[0]
            db.execute("DELETE FROM template_versions WHERE collection = ?", (name,))
            db.execute("DELETE FROM counters WHERE collection = ?", (name,))
            db.execute("DELETE FROM collections WHERE name = ?", (name,))
            self._vector_update(qe.UpdateOperation.delete_points_by_filter(self._template_filter(name)))
            self._flush()
        return int(count)

    # -- templates ---------------------------------------------------------

    def write_templates(
        self, collection: str, templates: Sequence[Template], exemplars: Sequence[Exemplar]
    ) -> None:
        status = {t.id: t.status.value for t in templates}
        points = self._points(collection, exemplars, status)
        with self._transaction() as db:
            self._require_collection(collection)
            # What a failure must restore: the status the earlier exemplars
            # had, and which points are new (upserting a stored phrasing
            # again must not delete it on rollback).
            before = {
                t.id: self.get_template(collection, t.id).status.value
                for t in templates
                if self._has_template(collection, t.id)
            }
            ids: list[qe.PointId] = [str(p.id) for p in points]
            present = {str(r.id) for r in self._shard.retrieve(ids, False, False)} if ids else set()
            for template in templates:
                try:
                    db.execute(
                        "INSERT INTO template_versions (collection, template_id, version, body) "
                        "VALUES (?, ?, ?, ?)",
                        (collection, template.id, template.version, template.model_dump_json()),
                    )
                except sqlite3.IntegrityError as exc:
                    raise ConflictError(
                        f"template {template.id!r} version {template.version} is already stored "
                        "(someone else changed it; read it again and retry)"
                    ) from exc
            try:
                for start in range(0, len(points), _BATCH):
                    self._vector_update(qe.UpdateOperation.upsert_points(points[start : start + _BATCH]))
                # Exemplars kept from earlier versions follow the new status.
                for template in templates:
                    self._set_status_payload(collection, template.id, status[template.id])
                self._flush()
            except BaseException:
                fresh = [i for i in ids if i not in present]
                if fresh:
                    self._shard.update(qe.UpdateOperation.delete_points(fresh))
                for template_id, value in before.items():
                    self._set_status_payload(collection, template_id, value)
                self._shard.flush()
                raise

    def _has_template(self, collection: str, template_id: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM template_versions WHERE collection = ? AND template_id = ? LIMIT 1",
            (collection, template_id),
        ).fetchone()
        return row is not None

    def _set_status_payload(self, collection: str, template_id: str, status: str) -> None:
        self._vector_update(
            qe.UpdateOperation.set_payload_by_filter(
                self._template_filter(collection, template_id), {"status": status}
            )
        )

    def _row_template(self, body: str) -> Template:
        return Template.model_validate_json(body)

    def get_template(self, collection: str, template_id: str, version: int = 0) -> Template:
        if version:
            row = self._db.execute(
                "SELECT body FROM template_versions WHERE collection = ? AND template_id = ? "
                "AND version = ?",
                (collection, template_id, version),
            ).fetchone()
        else:
            row = self._db.execute(
                "SELECT body FROM template_versions WHERE collection = ? AND template_id = ? "
                "ORDER BY version DESC LIMIT 1",
                (collection, template_id),
            ).fetchone()
        if row is None:
            self._require_collection(collection)
            what = f"version {version} of template" if version else "template"
            raise NotFoundError(f"{what} {template_id!r} does not exist in collection {collection!r}")
        return self._row_template(row[0])

    def list_templates(self, collection: str) -> list[Template]:
        self._require_collection(collection)
        rows = self._db.execute(
            "SELECT v.body FROM template_versions v JOIN ("
            "  SELECT template_id, MAX(version) AS version FROM template_versions"
            "  WHERE collection = ? GROUP BY template_id) m"
            " ON v.template_id = m.template_id AND v.version = m.version"
            " WHERE v.collection = ? ORDER BY v.template_id",
            (collection, collection),
        ).fetchall()
        return [self._row_template(body) for (body,) in rows]

    def list_versions(self, collection: str, template_id: str) -> list[Template]:
        rows = self._db.execute(
            "SELECT body FROM template_versions WHERE collection = ? AND template_id = ? "
            "ORDER BY version",
            (collection, template_id),
        ).fetchall()
        if not rows:
            self.get_template(collection, template_id)
        return [self._row_template(body) for (body,) in rows]

    def set_status(self, collection: str, template_id: str, status: TemplateStatus) -> Template:
        with self._transaction() as db:
            current = self.get_template(collection, template_id)
            changed = current.model_copy(update={"status": status})
            db.execute(
                "UPDATE template_versions SET body = ? WHERE collection = ? AND template_id = ? "
                "AND version = ?",
                (changed.model_dump_json(), collection, template_id, current.version),
            )
            self._set_status_payload(collection, template_id, status.value)
            self._flush()
        return changed

    def delete_template(self, collection: str, template_id: str) -> int:
        with self._transaction() as db:
            self.get_template(collection, template_id)
            count = db.execute(
                "DELETE FROM template_versions WHERE collection = ? AND template_id = ?",
                (collection, template_id),
            ).rowcount
            db.execute(
                "DELETE FROM counters WHERE collection = ? AND template_id = ?",
                (collection, template_id),
            )
            self._vector_update(
                qe.UpdateOperation.delete_points_by_filter(
                    self._template_filter(collection, template_id)
                )
            )
            self._flush()
        return int(count)

    # -- exemplars ---------------------------------------------------------

    def add_exemplars(self, collection: str, exemplars: Sequence[Exemplar]) -> int:
        with self._write_lock:
            self._require_collection(collection)
            ids: list[qe.PointId] = [ex.id for ex in exemplars]
            present = {str(r.id) for r in self._shard.retrieve(ids, False, False)} if ids else set()
            fresh = list({ex.id: ex for ex in exemplars if ex.id not in present}.values())
            status = {
                template_id: self.get_template(collection, template_id).status.value
                for template_id in {ex.template_id for ex in fresh}
            }
            points = self._points(collection, fresh, status)
            for start in range(0, len(points), _BATCH):
                self._vector_update(qe.UpdateOperation.upsert_points(points[start : start + _BATCH]))
            self._flush()
        return len(fresh)

    def delete_exemplars(self, collection: str, exemplar_ids: Sequence[str]) -> int:
        with self._write_lock:
            self._require_collection(collection)
            ids: list[Any] = list(dict.fromkeys(exemplar_ids))
            try:
                records = self._shard.retrieve(ids, True, False) if ids else []
            except Exception as exc:
                raise StoreError(f"vector store read failed: {exc}") from exc
            # An id of another collection is not this call's to delete.
            stored: list[Any] = [
                str(r.id) for r in records if (r.payload or {}).get("collection") == collection
            ]
            if stored:
                self._vector_update(qe.UpdateOperation.delete_points(stored))
                self._flush()
        return len(stored)

    def exemplars(
        self, collection: str, kind: str | None = None, template_id: str | None = None
    ) -> list[Exemplar]:
        must: list[qe.ConditionType] = [_match("collection", collection)]
        if kind:
            must.append(_match("kind", kind))
        if template_id is not None:
            must.append(_match("template_id", template_id))
        found: list[Exemplar] = []
        offset = None
        while True:
            records, offset = self._shard.scroll(
                qe.ScrollRequest(
                    offset=offset, limit=1024, filter=qe.Filter(must=must),
                    with_payload=True, with_vector=True,
                )
            )
            for record in records:
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
            if offset is None:
                break
        return found

    def search(self, collection: str, vector: np.ndarray, limit: int) -> list[ExemplarHit]:
        query = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(vector.astype(np.float32).tolist()),
            filter=qe.Filter(
                must=[
                    _match("collection", collection),
                    _match("kind", "positive"),
                    _match("status", TemplateStatus.ACTIVE.value),
                ]
            ),
            with_payload=["template_id", "text", "key"],
        )
        try:
            points = self._shard.query(query)
        except Exception as exc:
            raise StoreError(f"vector search failed: {exc}") from exc
        return [
            ExemplarHit(
                exemplar_id=str(p.id),
                template_id=(p.payload or {})["template_id"],
                text=(p.payload or {}).get("text", ""),
                key=(p.payload or {}).get("key", ""),
                score=float(p.score),
            )
            for p in points
        ]

    # -- counters ----------------------------------------------------------

    def counters(self, collection: str) -> dict[str, Counters]:
        rows = self._db.execute(
            "SELECT template_id, hits, successes, failures, wrong_plan_reports, saved_usd, "
            "last_hit_at FROM counters WHERE collection = ?",
            (collection,),
        ).fetchall()
        return {
            row[0]: Counters(
                hits=row[1], successes=row[2], failures=row[3], wrong_plan_reports=row[4],
                saved_usd=row[5], last_hit_at=datetime.fromisoformat(row[6]) if row[6] else None,
            )
            for row in rows
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
        with self._transaction() as db:
            db.execute(
                "INSERT INTO counters (collection, template_id, hits, successes, failures, "
                "wrong_plan_reports, saved_usd, last_hit_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (collection, template_id) DO UPDATE SET "
                "hits = hits + excluded.hits, successes = successes + excluded.successes, "
                "failures = failures + excluded.failures, "
                "wrong_plan_reports = wrong_plan_reports + excluded.wrong_plan_reports, "
                "saved_usd = saved_usd + excluded.saved_usd, "
                "last_hit_at = COALESCE(excluded.last_hit_at, last_hit_at)",
                (
                    collection, template_id, hits, successes, failures, wrong_plan_reports,
                    saved_usd, last_hit_at.isoformat() if last_hit_at else None,
                ),
            )

    def close(self) -> None:
        with self._write_lock:
            try:
                self._shard.flush()
                self._shard.close()
            finally:
                self._db.close()
                fcntl.flock(self._lock_file, fcntl.LOCK_UN)
                self._lock_file.close()


def _plain_vector(vector: Any) -> list[float]:
    if isinstance(vector, dict):
        vector = vector.get("") or next(iter(vector.values()))
    return list(vector)


