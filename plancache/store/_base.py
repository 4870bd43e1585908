"""The storage interface and the records that cross it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import numpy as np

from plancache.templates import Collection, Template, TemplateStatus

_NAMESPACE = uuid.UUID("6f1c2b7e-5d0a-4c8e-9b1f-3a2d4e5f6a7b")


def exemplar_id(collection: str, template_id: str, kind: str, key: str) -> str:
    """A stable point id: the same phrasing of the same template is stored once."""
    return str(uuid.uuid5(_NAMESPACE, "\x00".join((collection, template_id, kind, key))))


@dataclass(frozen=True)
class Exemplar:
    """A phrasing of a template, as a point in the vector store.

    ``kind`` is ``positive`` (served for requests near it) or ``negative``
    (a request the template was wrongly served for, kept to tighten it).
    """

    collection: str
    template_id: str
    text: str
    key: str
    vector: np.ndarray = field(repr=False, compare=False)
    kind: str = "positive"
    source: str = "curated"

    @property
    def id(self) -> str:
        return exemplar_id(self.collection, self.template_id, self.kind, self.key)


@dataclass(frozen=True)
class ExemplarHit:
    """One exemplar the vector store found near a query."""

    exemplar_id: str
    template_id: str
    text: str
    key: str
    score: float


@dataclass
class Counters:
    """Running counts of one template, kept across restarts."""

    hits: int = 0
    successes: int = 0
    failures: int = 0
    wrong_plan_reports: int = 0
    saved_usd: float = 0.0
    last_hit_at: datetime | None = None


class Store(Protocol):
    """What plancache needs of storage. Errors are plancache.errors types.

    Writes of templates are all-or-nothing: either every version and
    exemplar of the call is stored, or none is.
    """

    def create_collection(self, collection: Collection) -> None: ...

    def get_collection(self, name: str) -> Collection: ...

    def list_collections(self) -> list[Collection]: ...

    def save_collection(self, collection: Collection) -> None: ...

    def delete_collection(self, name: str) -> int: ...

    def write_templates(
        self, collection: str, templates: Sequence[Template], exemplars: Sequence[Exemplar]
    ) -> None:
        """Store each template as a new version (its ``version`` field) and the exemplars."""
        ...

    def get_template(self, collection: str, template_id: str, version: int = 0) -> Template: ...

    def list_templates(self, collection: str) -> list[Template]: ...

    def list_versions(self, collection: str, template_id: str) -> list[Template]: ...

    def set_status(self, collection: str, template_id: str, status: TemplateStatus) -> Template: ...

    def delete_template(self, collection: str, template_id: str) -> int: ...

    def add_exemplars(self, collection: str, exemplars: Sequence[Exemplar]) -> int:
        """Store exemplars not stored yet; returns how many were new."""
        ...

    def delete_exemplars(self, collection: str, exemplar_ids: Sequence[str]) -> int:
        """Delete these exemplars of the collection; returns how many were stored."""
        ...

    def exemplars(
        self, collection: str, kind: str | None = None, template_id: str | None = None
    ) -> list[Exemplar]:
        """The collection's exemplars with their vectors, of one kind and template if given."""
        ...

    def search(self, collection: str, vector: np.ndarray, limit: int) -> list[ExemplarHit]:
        """Nearest positive exemplars of the collection's active templates."""
        ...

    def counters(self, collection: str) -> dict[str, Counters]: ...

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
    ) -> None: ...

    def close(self) -> None: ...
