"""Collection files: templates as YAML (for people) and JSON Lines (for machines).

Reading checks everything before anything is stored and reports every
problem at once, each naming the file, the template and the field, so one
pass over the file fixes it. ``dump_yaml`` and ``dump_jsonl`` write what
``load`` reads back without loss.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import yaml
from pydantic import ValidationError as PydanticValidationError

from plancache.errors import TemplateFileError
from plancache.templates import (
    COLLECTION_NAME,
    Collection,
    CollectionSettings,
    Template,
    check_template,
    format_duration,
)

__all__ = ["CollectionFile", "dump_jsonl", "dump_yaml", "load", "load_jsonl", "load_yaml"]

# Fields the file format carries for a template; the rest (counters, the
# collection name) belong to the store.
_TEMPLATE_FIELDS = (
    "id", "description", "exemplars", "parameters", "steps", "ttl", "tags", "status",
)
_EXPORT_EXTRA = ("source", "version", "created_at", "updated_at", "planning_cost")


class CollectionFile:
    """What one file holds: a collection's settings and its templates."""

    def __init__(self, collection: Collection, templates: list[Template]) -> None:
        self.collection = collection
        self.templates = templates


def _field_path(loc: Sequence[int | str]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _pydantic_problems(exc: PydanticValidationError) -> list[str]:
    problems = []
    for error in exc.errors():
        where = _field_path(error["loc"]) or "template"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        elif error["type"] == "missing":
            message = "missing field"
        problems.append(f"{where}: {message}")
    return problems


def _parse(
    document: Any, source: str, collection_override: str | None
) -> CollectionFile:
    if not isinstance(document, dict):
        raise TemplateFileError([f"{source}: expected a mapping with 'collection' and 'templates'"])
    problems: list[str] = []
    unknown = set(document) - {"collection", "description", "settings", "templates", "tenant"}
    for key in sorted(unknown):
        problems.append(f"{source}: {key}: unknown field")

    name = collection_override or document.get("collection")
    if not isinstance(name, str) or not COLLECTION_NAME.match(name):
        problems.append(
            f"{source}: collection: {name!r} is not a valid collection name "
            "(letters, digits, '_', '-', '.'; at most 64 characters)"
        )
        name = "invalid"
    try:
        settings = CollectionSettings.model_validate(document.get("settings") or {})
    except PydanticValidationError as exc:
        problems += [f"{source}: settings.{p}" for p in _pydantic_problems(exc)]
        settings = CollectionSettings()
    except ValueError as exc:
        problems.append(f"{source}: settings: {exc}")
        settings = CollectionSettings()
    collection = Collection(
        name=name,
        description=str(document.get("description") or ""),
        tenant=str(document.get("tenant") or ""),
        settings=settings,
    )

    raw_templates = document.get("templates")
    if not isinstance(raw_templates, list):
        problems.append(f"{source}: templates: missing field (a list of templates)")
        raw_templates = []
    tools = settings.tool_names() if settings.tools else None
    templates: list[Template] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(raw_templates):
        label = f"templates[{index}]"
        if isinstance(raw, dict) and isinstance(raw.get("id"), str):
            label = f"template {raw['id']!r}"
        where = f"{source}: {label}"
        if not isinstance(raw, dict):
            problems.append(f"{where}: expected a mapping")
            continue
        raw_id = str(raw.get("id"))
        if raw_id in seen:
            problems.append(f"{where}: id: duplicate template id (also templates[{seen[raw_id]}])")
        seen.setdefault(raw_id, index)
        try:
            template = Template.model_validate({**raw, "collection": collection.name})
        except PydanticValidationError as exc:
            problems += [f"{where}: {p}" for p in _pydantic_problems(exc)]
            continue
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            continue
        problems += [f"{where}: {p}" for p in check_template(template, tools=tools)]
        templates.append(template)
    if problems:
        raise TemplateFileError(problems)
    return CollectionFile(collection, templates)


def load_yaml(text: str, source: str = "<input>", collection: str | None = None) -> CollectionFile:
    """Read a YAML collection file; raises TemplateFileError listing every problem."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise TemplateFileError([f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}"]) from exc
    return _parse(document, source, collection)


def load_jsonl(text: str, source: str = "<input>", collection: str | None = None) -> CollectionFile:
    """Read JSON Lines: a header object with the collection, then one template a line.

    When several lines carry the same template id (an export of all
    versions) the one with the highest version is the template read.
    """
    header: dict[str, Any] | None = None
    latest: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{source}:{number}: not valid JSON: {exc.msg}")
            continue
        if not isinstance(item, dict):
            problems.append(f"{source}:{number}: expected a JSON object")
        elif header is None:
            header = item
        else:
            template_id = str(item.get("id"))
            if template_id not in latest:
                order.append(template_id)
                latest[template_id] = item
            elif int(item.get("version") or 0) >= int(latest[template_id].get("version") or 0):
                latest[template_id] = item
    if problems:
        raise TemplateFileError(problems)
    if header is None:
        raise TemplateFileError([f"{source}: empty file (the first line names the collection)"])
    document = {**header, "templates": [latest[i] for i in order]}
    return _parse(document, source, collection)


def load(text: str, source: str = "<input>", collection: str | None = None) -> CollectionFile:
    """Read YAML or JSON Lines, told apart by the file name or the first character."""
    if source.endswith((".jsonl", ".ndjson")) or text.lstrip().startswith("{"):
        return load_jsonl(text, source, collection)
    return load_yaml(text, source, collection)


def _plain(value: Any) -> Any:
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if hasattr(value, "value") and isinstance(value.value, str):
        return value.value
    return value


def _collection_header(collection: Collection) -> dict[str, Any]:
    settings = collection.settings.model_dump()
    header: dict[str, Any] = {"collection": collection.name}
    if collection.description:
        header["description"] = collection.description
    if collection.tenant:
        header["tenant"] = collection.tenant
    header["settings"] = _plain(settings)
    return header


def _template_dict(template: Template, full: bool) -> dict[str, Any]:
    fields = _TEMPLATE_FIELDS + (_EXPORT_EXTRA if full else ())
    data = template.model_dump(include=set(fields), exclude_none=True)
    # Keep the file short and readable: empty defaults are left out.
    steps = []
    for step in data.get("steps", []):
        steps.append({k: v for k, v in step.items() if v not in ("", [], {})})
    data["steps"] = steps
    ordered = {key: data[key] for key in fields if key in data}
    return _plain(ordered)


def dump_yaml(collection: Collection, templates: Sequence[Template]) -> str:
    """The collection file of the README, current versions, with their history fields."""
    document = _collection_header(collection)
    document["templates"] = [_template_dict(t, full=True) for t in templates]
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)


def dump_jsonl(collection: Collection, templates: Sequence[Template]) -> str:
    """A header line, then one template (version) a line."""
    lines = [json.dumps(_collection_header(collection), sort_keys=True)]
    lines += [json.dumps(_template_dict(t, full=True), sort_keys=True) for t in templates]
    return "\n".join(lines) + "\n"
