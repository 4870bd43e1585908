"""Curation: the admin side of ``PlanCache``.

Every change to a collection or template goes through here: it is checked
in full before anything is stored (a bad file or field stores nothing),
written as a new version where templates are concerned (earlier versions are
kept for rollback), logged with the fields an operator filters on, and
followed by ``refresh`` so the collection's decider refits on what is now
stored. ``PlanCache`` inherits these methods; the serving side (Lookup,
planning, feedback) lives in ``plancache.cache``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np

from plancache.embedding import Embedder
from plancache.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
    VersionConflictError,
)
from plancache.keys import PLACEHOLDER, exemplar_key
from plancache.logs import get_logger
from plancache.store import Exemplar, Store
from plancache.templatefile import CollectionFile, dump_jsonl, dump_yaml, load
from plancache.templates import (
    MAX_EXEMPLARS,
    MAX_INTENT_CHARS,
    NAME,
    Collection,
    Template,
    TemplateSource,
    TemplateStatus,
    check_collection_name,
    check_template,
    utcnow,
)

__all__ = ["Curation", "ImportResult"]

log = get_logger("plancache.curation")

# Exemplar sources learned from traffic: an update's exemplar list leaves them.
LEARNED_SOURCES = ("feedback", "added")
_COLLECTION_PATHS = (
    "description",
    "tenant",
    "settings",
    "settings.default_ttl",
    "settings.auto_approve_planned",
    "settings.tools",
    "settings.max_wrong_rate",
    "settings.min_similarity",
    "settings.max_out_of_scope_rate",
)


# Tries of a forced update against writers racing for the same version number.
_FORCED_UPDATE_ATTEMPTS = 20


@dataclass(frozen=True)
class ImportResult:
    collection: str
    created: int
    updated: int
    exemplars: int


class Curation:
    """Create, import, export, version, approve, disable and delete templates
    and collections over ``store``.

    A base of ``PlanCache``, which supplies ``store``, ``embedder``, ``tiers``
    and ``refresh``.
    """

    store: Store
    embedder: Embedder
    tiers: tuple[str, ...]

    def refresh(self, name: str) -> None:  # pragma: no cover - PlanCache's
        raise NotImplementedError


    def _embed_exemplars(
        self, collection: str, owners: Sequence[tuple[str, str]], source: str
    ) -> list[Exemplar]:
        """Positive exemplars for (template id, phrasing) pairs, in one model call."""
        keys = [exemplar_key(text) for _, text in owners]
        vectors = self.embedder.embed(keys) if keys else np.zeros((0, self.embedder.dimension))
        return [
            Exemplar(collection, template_id, text, key, vector, "positive", source)
            for (template_id, text), key, vector in zip(owners, keys, vectors, strict=True)
        ]

    def _check(self, collection: Collection, template: Template) -> None:
        tools = collection.settings.tool_names() if collection.settings.tools else None
        problems = check_template(template, tools=tools, tiers=self.tiers)
        if problems:
            raise ValidationError(f"template {template.id!r}: " + "; ".join(problems))

    def create_collection(self, collection: Collection) -> Collection:
        check_collection_name(collection.name)
        self.store.create_collection(collection)
        self.refresh(collection.name)
        log.info("collection_created", collection=collection.name, tenant=collection.tenant or None)
        return collection

    def create_template(self, template: Template) -> Template:
        collection = self.store.get_collection(template.collection)
        self._check(collection, template)
        now = utcnow()
        template = template.model_copy(
            update={"version": 1, "created_at": now, "updated_at": now, "source": TemplateSource.CURATED}
        )
        exemplars = self._embed_exemplars(
            collection.name, [(template.id, text) for text in template.exemplars], "curated"
        )
        try:
            self.store.get_template(collection.name, template.id)
        except NotFoundError:
            pass
        else:
            raise ConflictError(
                f"template {template.id!r} already exists in {collection.name!r}; "
                "use UpdateTemplate to store a new version"
            )
        self.store.write_templates(collection.name, [template], exemplars)
        self.refresh(collection.name)
        log.info("template_created", collection=collection.name, template_id=template.id, version=1)
        return template

    def delete_collection(self, name: str) -> int:
        count = self.store.delete_collection(name)
        self.refresh(name)
        log.info("collection_deleted", collection=name, templates_deleted=count)
        return count

    def import_file(
        self,
        text: str,
        *,
        source: str = "<input>",
        collection: str | None = None,
        dry_run: bool = False,
        replace: bool = False,
        create_collection: bool = True,
        tenant: str | None = None,
    ) -> ImportResult:
        """Validate the whole file, then store it; a bad file stores nothing.

        ``tenant`` set: the caller acts for that tenant; a collection of
        another tenant counts as missing, and a new one is created for it.
        """
        parsed: CollectionFile = load(text, source, collection)
        name = parsed.collection.name
        try:
            stored_collection: Collection | None = self.store.get_collection(name)
        except NotFoundError:
            stored_collection = None
            if not create_collection:
                raise
        if tenant is not None:
            if stored_collection is not None and stored_collection.tenant != tenant:
                raise NotFoundError(f"collection {name!r} does not exist")
            if parsed.collection.tenant not in ("", tenant):
                raise PermissionDeniedError(
                    f"{source}: the file names tenant {parsed.collection.tenant!r}; this token "
                    f"may import only into tenant {tenant!r} (remove the tenant line)"
                )
            parsed.collection = parsed.collection.model_copy(update={"tenant": tenant})
        existing = {t.id: t for t in self.store.list_templates(name)} if stored_collection else {}
        clashes = sorted(set(existing) & {t.id for t in parsed.templates})
        if clashes and not replace:
            raise ValidationError(
                f"{source}: templates already stored in {name!r}: {', '.join(clashes)} "
                "(import with replace to store them as new versions)"
            )
        if dry_run:
            return ImportResult(name, len(parsed.templates) - len(clashes), len(clashes), sum(len(t.exemplars) for t in parsed.templates))

        now = utcnow()
        to_write: list[Template] = []
        for template in parsed.templates:
            before = existing.get(template.id)
            to_write.append(
                template.model_copy(
                    update={
                        "collection": name,
                        # An exported template keeps its version number.
                        "version": before.version + 1 if before else (template.version or 1),
                        "created_at": before.created_at if before else (template.created_at or now),
                        "updated_at": now if before else (template.updated_at or now),
                    }
                )
            )
        # One model call for the whole file, not one per template.
        exemplars = self._embed_exemplars(
            name, [(t.id, text) for t in to_write for text in t.exemplars], "curated"
        )
        # A replaced template's file phrasings replace its own, as an update's do.
        stale = self._stale_phrasings(name, clashes, {e.id for e in exemplars})
        if stored_collection is None:
            self.store.create_collection(parsed.collection)
        try:
            self.store.write_templates(name, to_write, exemplars)
        except BaseException:
            if stored_collection is None:
                self.store.delete_collection(name)
            raise
        if stale:
            self.store.delete_exemplars(name, stale)
        self.refresh(name)
        log.info(
            "templates_imported", collection=name, source=source,
            created=len(to_write) - len(clashes), updated=len(clashes), exemplars=len(exemplars),
        )
        return ImportResult(name, len(to_write) - len(clashes), len(clashes), len(exemplars))

    def export(self, collection: str, fmt: str = "yaml", all_versions: bool = False) -> str:
        coll = self.store.get_collection(collection)
        templates = self.store.list_templates(collection)
        learned: dict[str, list[str]] = {}
        for ex in self.store.exemplars(collection, "positive"):
            learned.setdefault(ex.template_id, []).append(ex.text)
        full = []
        for template in templates:
            extra = sorted(set(learned.get(template.id, [])) - set(template.exemplars))
            full.append(template.model_copy(update={"exemplars": [*template.exemplars, *extra]}))
        if fmt == "jsonl":
            if all_versions:
                history = []
                for template in full:
                    history += self.store.list_versions(collection, template.id)[:-1]
                    history.append(template)
                return dump_jsonl(coll, history)
            return dump_jsonl(coll, full)
        return dump_yaml(coll, full)

    def add_exemplars(
        self, collection: str, template_id: str, texts: Sequence[str], source: str = "added"
    ) -> tuple[int, int]:
        """Attach phrasings to a template; returns (added, duplicates)."""
        if len(texts) > MAX_EXEMPLARS:
            raise ValidationError(f"{len(texts)} phrasings in one call; at most {MAX_EXEMPLARS}")
        template = self.store.get_template(collection, template_id)
        names = {p.name for p in template.parameters}
        clean = []
        for text in texts:
            if not text.strip():
                raise ValidationError("an exemplar is empty")
            if len(text) > MAX_INTENT_CHARS:
                raise ValidationError(
                    f"an exemplar is {len(text)} characters; at most {MAX_INTENT_CHARS} are accepted"
                )
            unknown = set(PLACEHOLDER.findall(text)) - names
            if unknown:
                raise ValidationError(
                    f"exemplar {text!r} names parameters template {template_id!r} lacks: "
                    + ", ".join(sorted(unknown))
                )
            clean.append(text.strip())
        exemplars = self._embed_exemplars(collection, [(template.id, text) for text in clean], source)
        added = self.store.add_exemplars(collection, exemplars)
        if added:
            self.refresh(collection)
        log.info(
            "exemplars_added", collection=collection, template_id=template_id,
            added=added, duplicates=len(clean) - added, source=source,
        )
        return added, len(clean) - added

    def update_template(
        self,
        template: Template,
        *,
        expected_version: int = 0,
        status: TemplateStatus | None = None,
    ) -> Template:
        """Store ``template`` as the next version; earlier versions are kept.

        ``status`` None keeps the current status (the template's own status
        field is not read). ``expected_version`` set and no longer current:
        VersionConflictError, nothing stored. ``expected_version`` 0 (a forced
        update) is stored on top of whatever version is current, even when
        other writers store versions meanwhile.
        """
        collection = self.store.get_collection(template.collection)
        for attempt in range(_FORCED_UPDATE_ATTEMPTS):
            current = self.store.get_template(collection.name, template.id)
            if expected_version and expected_version != current.version:
                raise VersionConflictError(
                    f"template {template.id!r} is at version {current.version}, the update was "
                    f"based on version {expected_version}; read it again and redo the change"
                )
            try:
                return self._store_version(
                    collection, current, template, status or current.status, "template_updated"
                )
            except VersionConflictError:
                # Another writer took the next version number first: a forced
                # update reads the new current version and goes on top of it.
                if expected_version or attempt == _FORCED_UPDATE_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def rollback_template(self, collection: str, template_id: str, version: int) -> Template:
        """Store an earlier version's content (and status) as the next version."""
        if version < 1:
            raise ValidationError("version: give the version to restore (1 or more)")
        stored = self.store.get_collection(collection)
        current = self.store.get_template(collection, template_id)
        if version == current.version:
            raise ValidationError(
                f"version {version} of template {template_id!r} is the current one; nothing to roll back"
            )
        earlier = self.store.get_template(collection, template_id, version)
        return self._store_version(
            stored, current, earlier, earlier.status, "template_rolled_back", restored_version=version
        )

    def _store_version(
        self,
        collection: Collection,
        current: Template,
        content: Template,
        status: TemplateStatus,
        event: str,
        **log_fields: Any,
    ) -> Template:
        """Write ``content`` as the version after ``current``.

        Its exemplar list replaces the template's own phrasings (curated or
        planned); phrasings learned since (feedback, added) stay.
        """
        new = content.model_copy(
            update={
                "collection": collection.name,
                "version": current.version + 1,
                "created_at": current.created_at,
                "updated_at": utcnow(),
                "source": current.source,
                "planning_cost": current.planning_cost,
                "status": status,
            }
        )
        self._check(collection, new)
        fresh = self._embed_exemplars(
            collection.name, [(new.id, text) for text in new.exemplars], "curated"
        )
        stale = self._stale_phrasings(collection.name, [new.id], {e.id for e in fresh})
        try:
            self.store.write_templates(collection.name, [new], fresh)
        except VersionConflictError:
            raise
        except ConflictError as exc:
            raise VersionConflictError(
                f"template {new.id!r} changed while this change was stored; read it again and retry"
            ) from exc
        # Not atomic with the write: a failure here leaves the old phrasings
        # serving the new version, which the next update removes.
        removed = self.store.delete_exemplars(collection.name, stale) if stale else 0
        self.refresh(collection.name)
        log.info(
            event, collection=collection.name, template_id=new.id, version=new.version,
            previous_version=current.version, status=new.status.value,
            exemplars=len(fresh), exemplars_removed=removed, **log_fields,
        )
        return new

    def _stale_phrasings(
        self, collection: str, template_ids: Sequence[str], keep: set[str]
    ) -> list[str]:
        """Ids of the templates' own phrasings (curated or planned) not in
        ``keep``; phrasings learned from traffic (feedback, added) stay."""
        return [
            e.id
            for template_id in template_ids
            for e in self.store.exemplars(collection, "positive", template_id)
            if e.source not in LEARNED_SOURCES and e.id not in keep
        ]

    def set_template_status(
        self, collection: str, template_id: str, status: TemplateStatus
    ) -> Template:
        """Approve or re-enable (ACTIVE) or switch off (DISABLED) the current version."""
        if status is TemplateStatus.CANDIDATE:
            raise ValidationError(
                "status: set ACTIVE to approve or re-enable a template, DISABLED to switch it off"
            )
        stored = self.store.get_collection(collection)
        current = self.store.get_template(collection, template_id)
        ttl = stored.settings.default_ttl
        if status is TemplateStatus.ACTIVE and current.is_expired(ttl):
            raise ValidationError(
                f"template {template_id!r} expired at {current.expires_at(ttl):%Y-%m-%dT%H:%M:%SZ}; "
                "update it first (a new version renews its TTL), then approve it"
            )
        changed = self.store.set_status(collection, template_id, status)
        self.refresh(collection)
        log.info(
            "template_status_set", collection=collection, template_id=template_id,
            version=changed.version, status=status.value, previous_status=current.status.value,
        )
        return changed

    def delete_template(self, collection: str, template_id: str) -> int:
        """Delete a template with all its versions, exemplars and counters."""
        current = self.store.get_template(collection, template_id)
        count = self.store.delete_template(collection, template_id)
        self.refresh(collection)
        log.info(
            "template_deleted", collection=collection, template_id=template_id,
            version=current.version, versions_deleted=count,
        )
        return count

    def invalidate_templates(
        self, collection: str, *, tag: str = "", older_than: timedelta | None = None
    ) -> list[str]:
        """Disable the templates with ``tag`` and/or last updated before ``older_than`` ago."""
        if not tag and not older_than:
            raise ValidationError(
                "give a tag, older_than or both: invalidating every template takes a deliberate filter"
            )
        if older_than is not None and older_than.total_seconds() < 0:
            raise ValidationError("older_than: must not be negative")
        self.store.get_collection(collection)
        cutoff = utcnow() - older_than if older_than else None

        def old_enough(template: Template) -> bool:
            changed = template.updated_at or template.created_at
            return cutoff is None or (changed is not None and changed < cutoff)

        chosen = [
            t for t in self.store.list_templates(collection)
            if t.status is not TemplateStatus.DISABLED and (not tag or tag in t.tags) and old_enough(t)
        ]
        for template in chosen:
            self.store.set_status(collection, template.id, TemplateStatus.DISABLED)
        if chosen:
            self.refresh(collection)
        log.info(
            "templates_invalidated", collection=collection, tag=tag or None,
            older_than_s=older_than.total_seconds() if older_than else None,
            template_ids=[t.id for t in chosen], versions={t.id: t.version for t in chosen},
        )
        return [t.id for t in chosen]

    def update_collection(self, name: str, changes: Collection, paths: Sequence[str]) -> Collection:
        """Change the fields of ``changes`` that ``paths`` name (``settings.default_ttl``, ...)."""
        if not paths:
            raise ValidationError("nothing to change: name the fields in update_mask")
        unknown = sorted(set(paths) - set(_COLLECTION_PATHS))
        if unknown:
            raise ValidationError(
                f"update_mask: cannot change {', '.join(unknown)}; paths are "
                + ", ".join(_COLLECTION_PATHS)
            )
        current = self.store.get_collection(name)
        body = current.model_dump()
        settings = body.pop("settings")
        given = changes.settings.model_dump()
        for path in paths:
            if path == "settings":
                settings = given
            elif path.startswith("settings."):
                settings[path.removeprefix("settings.")] = given[path.removeprefix("settings.")]
            else:
                body[path] = getattr(changes, path)
        updated = Collection.model_validate({**body, "settings": settings})
        self._check_settings(updated, tools_changed=bool({"settings", "settings.tools"} & set(paths)))
        self.store.save_collection(updated)
        self.refresh(name)
        log.info("collection_updated", collection=name, paths=sorted(set(paths)))
        return updated

    def _check_settings(self, collection: Collection, *, tools_changed: bool) -> None:
        settings = collection.settings
        problems = []
        if settings.default_ttl.total_seconds() <= 0:
            problems.append("settings.default_ttl: must be positive")
        if not 0 < settings.max_wrong_rate < 1:
            problems.append("settings.max_wrong_rate: must be between 0 and 1 (e.g. 0.005)")
        if not 0 < settings.max_out_of_scope_rate < 1:
            problems.append("settings.max_out_of_scope_rate: must be between 0 and 1 (e.g. 0.1)")
        if not 0 <= settings.min_similarity <= 1:
            problems.append("settings.min_similarity: must be between 0 and 1")
        names = [tool.name for tool in settings.tools]
        problems += [f"settings.tools: {n!r} is not a valid tool name" for n in names if not NAME.match(n)]
        problems += [f"settings.tools: {n!r} is listed twice" for n in sorted({n for n in names if names.count(n) > 1})]
        if problems:
            raise ValidationError("; ".join(problems))
        if not tools_changed:
            return
        # A catalogue that drops a tool some template calls would break it.
        tools = settings.tool_names() if settings.tools else None
        for template in self.store.list_templates(collection.name):
            broken = check_template(template, tools=tools, tiers=self.tiers)
            if broken:
                problems.append(f"template {template.id!r}: " + "; ".join(broken))
        if problems:
            raise ValidationError("the new settings break stored templates: " + " | ".join(problems))

    def sweep_expired(self) -> list[tuple[str, str]]:
        """Disable every active template past its TTL; returns (collection, template id) pairs."""
        swept: list[tuple[str, str]] = []
        for collection in self.store.list_collections():
            ttl = collection.settings.default_ttl
            for template in self.store.list_templates(collection.name):
                if template.status is not TemplateStatus.ACTIVE or not template.is_expired(ttl):
                    continue
                # Read again: an update since the listing renewed the TTL.
                current = self.store.get_template(collection.name, template.id)
                if current.version != template.version or current.status is not TemplateStatus.ACTIVE:
                    continue
                self.store.set_status(collection.name, template.id, TemplateStatus.DISABLED)
                swept.append((collection.name, template.id))
                expired_at = template.expires_at(ttl)
                log.info(
                    "template_expired", collection=collection.name, template_id=template.id,
                    version=template.version, expired_at=expired_at.isoformat() if expired_at else None,
                )
            if any(name == collection.name for name, _ in swept):
                self.refresh(collection.name)
        return swept
