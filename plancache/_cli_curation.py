"""Command-line curation: template versions and status, collections, the savings report.

Importing this module adds its commands to the ``templates`` and
``collections`` groups and ``report`` to the ``plancache`` command.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask

from plancache.cli import Server, Token, _call, _client, app, collections_app, templates_app
from plancache.convert import (
    collection_from_proto,
    collection_to_proto,
    template_from_proto,
    template_to_proto,
)
from plancache.errors import PlancacheError
from plancache.templatefile import dump_yaml, load_yaml
from plancache.templates import (
    Collection,
    CollectionSettings,
    ToolSpec,
    format_duration,
    parse_duration,
)
from plancache.v1 import stats_service_pb2 as stats_pb
from plancache.v1 import template_pb2 as tpl_pb
from plancache.v1 import template_service_pb2 as tpl_svc

# Fields of a template file that the store sets, not the author.
_STORED_FIELDS = ("version", "created_at", "updated_at", "source", "planning_cost")
_STATUS_NAMES = {
    tpl_pb.TEMPLATE_STATUS_ACTIVE: "active",
    tpl_pb.TEMPLATE_STATUS_CANDIDATE: "candidate",
    tpl_pb.TEMPLATE_STATUS_DISABLED: "disabled",
}


def _status(message: tpl_pb.Template) -> str:
    return _STATUS_NAMES.get(message.status, "unspecified")


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def template_yaml(message: tpl_pb.Template) -> str:
    """A template as it reads in a collection file, with its version (for ``templates update``)."""
    template = template_from_proto(message)
    document = yaml.safe_load(dump_yaml(Collection(name=message.collection or "c"), [template]))
    body = {k: v for k, v in document["templates"][0].items() if k not in _STORED_FIELDS}
    return yaml.safe_dump({**body, "version": message.version}, sort_keys=False, allow_unicode=True, width=100)


# -- templates ---------------------------------------------------------------


@templates_app.command("update")
def templates_update(
    path: Annotated[Path, typer.Argument(help="YAML of one template, or a collection file; - reads stdin.")],
    collection: Annotated[str | None, typer.Option(help="The collection (default: the file's).")] = None,
    expected_version: Annotated[
        int | None, typer.Option(help="Refuse unless this is the current version (default: the file's version).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Store even if the template changed since the file was made.")] = False,
    server: Server = None,
    token: Token = None,
) -> None:
    """Store each template of FILE as a new version; earlier versions are kept."""
    if force and expected_version is not None:
        raise typer.BadParameter("give --expected-version or --force, not both")
    text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        _fail(f"{path}: not valid YAML: {exc}")
    if not isinstance(document, dict):
        _fail(f"{path}: expected a template (a mapping) or a collection file")
    items = document.get("templates") if "templates" in document else [document]
    name = collection or document.get("collection")
    if not name or not isinstance(items, list):
        _fail(f"{path}: name the collection with --collection")
    if expected_version is not None and len(items) != 1:
        _fail("--expected-version needs a file of one template")
    raw = [{k: v for k, v in item.items() if k not in _STORED_FIELDS} for item in items if isinstance(item, dict)]
    try:
        parsed = load_yaml(yaml.safe_dump({"collection": name, "templates": raw}), str(path))
    except PlancacheError as exc:
        _fail(str(exc))

    with _client(server, token) as client:
        for item, body, template in zip(items, raw, parsed.templates, strict=True):
            message = template_to_proto(template)
            message.collection = name
            if "status" not in body:
                message.status = tpl_pb.TEMPLATE_STATUS_UNSPECIFIED  # keep the current one
            based_on = 0 if force else (expected_version or int(item.get("version") or 0))
            stored = _call(
                client.templates.UpdateTemplate,
                tpl_svc.UpdateTemplateRequest(template=message, expected_version=based_on),
                client,
            )
            typer.echo(f"{stored.id}: version {stored.version} ({_status(stored)})")


@templates_app.command("versions")
def templates_versions(collection: str, template_id: str, server: Server = None, token: Token = None) -> None:
    """List a template's stored versions, oldest first."""
    with _client(server, token) as client:
        response = _call(
            client.templates.ListTemplateVersions,
            tpl_svc.ListTemplateVersionsRequest(collection=collection, template_id=template_id),
            client,
        )
    for v in response.versions:
        stored = v.updated_at.ToDatetime().strftime("%Y-%m-%d %H:%M:%S")
        typer.echo(f"v{v.version:<4} {_status(v):9} {stored}  {len(v.steps)} steps  {v.description}")


@templates_app.command("rollback")
def templates_rollback(
    collection: str, template_id: str, version: int, server: Server = None, token: Token = None
) -> None:
    """Store VERSION's content again, as the newest version."""
    with _client(server, token) as client:
        stored = _call(
            client.templates.RollbackTemplate,
            tpl_svc.RollbackTemplateRequest(collection=collection, template_id=template_id, version=version),
            client,
        )
    typer.echo(f"{stored.id}: version {stored.version} (the content of version {version}, {_status(stored)})")


def _set_status(
    collection: str,
    template_id: str,
    status: tpl_pb.TemplateStatus,
    server: str | None,
    token: str | None,
) -> None:
    with _client(server, token) as client:
        stored = _call(
            client.templates.SetTemplateStatus,
            tpl_svc.SetTemplateStatusRequest(collection=collection, template_id=template_id, status=status),
            client,
        )
    typer.echo(f"{stored.id}: {_status(stored)} (version {stored.version})")


@templates_app.command("approve")
def templates_approve(collection: str, template_id: str, server: Server = None, token: Token = None) -> None:
    """Serve a candidate or disabled template."""
    _set_status(collection, template_id, tpl_pb.TEMPLATE_STATUS_ACTIVE, server, token)


@templates_app.command("disable")
def templates_disable(collection: str, template_id: str, server: Server = None, token: Token = None) -> None:
    """Stop serving a template (it stays stored)."""
    _set_status(collection, template_id, tpl_pb.TEMPLATE_STATUS_DISABLED, server, token)


@templates_app.command("delete")
def templates_delete(collection: str, template_id: str, server: Server = None, token: Token = None) -> None:
    """Delete a template with all its versions and phrasings."""
    with _client(server, token) as client:
        response = _call(
            client.templates.DeleteTemplate,
            tpl_svc.DeleteTemplateRequest(collection=collection, template_id=template_id),
            client,
        )
    plural = "" if response.versions_deleted == 1 else "s"
    typer.echo(f"deleted {template_id}: {response.versions_deleted} version{plural}")


@templates_app.command("invalidate")
def templates_invalidate(
    collection: str,
    tag: Annotated[str, typer.Option(help="Templates with this tag.")] = "",
    older_than: Annotated[str, typer.Option(help="Templates last updated longer ago, e.g. 30d.")] = "",
    server: Server = None,
    token: Token = None,
) -> None:
    """Disable templates by tag and/or age."""
    if not tag and not older_than:
        raise typer.BadParameter("give --tag, --older-than or both")
    request = tpl_svc.InvalidateTemplatesRequest(collection=collection, tag=tag)
    if older_than:
        request.older_than.FromTimedelta(_duration(older_than, "--older-than"))
    with _client(server, token) as client:
        response = _call(client.templates.InvalidateTemplates, request, client)
    ids = list(response.template_ids)
    typer.echo(f"disabled {len(ids)} template{'' if len(ids) == 1 else 's'}" + (": " + ", ".join(ids) if ids else ""))


# -- collections ---------------------------------------------------------------


def _duration(text: str, option: str) -> Any:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{option}: {exc}") from exc


def _tools(path: Path) -> list[ToolSpec]:
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    if isinstance(loaded, dict):
        loaded = loaded.get("tools", loaded.get("settings", {}).get("tools"))
    if not isinstance(loaded, list):
        raise typer.BadParameter(f"{path}: expected a list of tools (name, description, parameters)")
    try:
        return [ToolSpec.model_validate(item) for item in loaded]
    except ValueError as exc:
        raise typer.BadParameter(f"{path}: {exc}") from exc


Description = Annotated[str | None, typer.Option(help="What the collection is for.")]
Tenant = Annotated[str | None, typer.Option(help="The tenant that owns it.")]
DefaultTtl = Annotated[str | None, typer.Option(help="TTL of templates that set none, e.g. 30d.")]
AutoApprove = Annotated[
    bool | None, typer.Option("--auto-approve/--no-auto-approve", help="Serve planned templates at once.")
]
MaxWrongRate = Annotated[float | None, typer.Option(help="Share of hits allowed to be wrong, e.g. 0.005.")]
MaxOutOfScopeRate = Annotated[
    float | None,
    typer.Option(help="Share of requests with no template allowed to be served anyway, e.g. 0.1."),
]
MinSimilarity = Annotated[float | None, typer.Option(help="No hit below this cosine similarity.")]
Tools = Annotated[Path | None, typer.Option(help="YAML file with the tool catalogue plans may use.")]


@collections_app.command("create")
def collections_create(
    name: str,
    description: Description = None,
    tenant: Tenant = None,
    default_ttl: DefaultTtl = None,
    auto_approve: AutoApprove = None,
    max_wrong_rate: MaxWrongRate = None,
    max_out_of_scope_rate: MaxOutOfScopeRate = None,
    min_similarity: MinSimilarity = None,
    tools: Tools = None,
    server: Server = None,
    token: Token = None,
) -> None:
    """Create an empty collection."""
    given: dict[str, Any] = {
        "default_ttl": _duration(default_ttl, "--default-ttl") if default_ttl else None,
        "auto_approve_planned": auto_approve,
        "max_wrong_rate": max_wrong_rate,
        "max_out_of_scope_rate": max_out_of_scope_rate,
        "min_similarity": min_similarity,
        "tools": _tools(tools) if tools else None,
    }
    settings = CollectionSettings(**{k: v for k, v in given.items() if v is not None})
    collection = Collection(name=name, description=description or "", tenant=tenant or "", settings=settings)
    with _client(server, token) as client:
        _call(
            client.templates.CreateCollection,
            tpl_svc.CreateCollectionRequest(collection=collection_to_proto(collection)),
            client,
        )
    typer.echo(f"created {name}")


@collections_app.command("show")
def collections_show(name: str, server: Server = None, token: Token = None) -> None:
    """Show a collection's settings as YAML."""
    with _client(server, token) as client:
        message = _call(client.templates.GetCollection, tpl_svc.GetCollectionRequest(name=name), client)
    typer.echo(_collection_yaml(message), nl=False)


def _collection_yaml(message: tpl_pb.Collection) -> str:
    document = yaml.safe_load(dump_yaml(collection_from_proto(message), []))
    document.pop("templates", None)
    document["templates"] = message.template_count
    document["exemplars"] = message.exemplar_count
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)


@collections_app.command("update")
def collections_update(
    name: str,
    description: Description = None,
    tenant: Tenant = None,
    default_ttl: DefaultTtl = None,
    auto_approve: AutoApprove = None,
    max_wrong_rate: MaxWrongRate = None,
    max_out_of_scope_rate: MaxOutOfScopeRate = None,
    min_similarity: MinSimilarity = None,
    tools: Tools = None,
    server: Server = None,
    token: Token = None,
) -> None:
    """Change the settings given; the others stay."""
    message = tpl_pb.Collection(name=name, description=description or "", tenant=tenant or "")
    settings = message.settings
    paths = [p for p, v in (("description", description), ("tenant", tenant)) if v is not None]
    if default_ttl is not None:
        settings.default_ttl.FromTimedelta(_duration(default_ttl, "--default-ttl"))
        paths.append("settings.default_ttl")
    if auto_approve is not None:
        settings.auto_approve_planned = auto_approve
        paths.append("settings.auto_approve_planned")
    if max_wrong_rate is not None:
        settings.max_wrong_rate = max_wrong_rate
        paths.append("settings.max_wrong_rate")
    if max_out_of_scope_rate is not None:
        settings.max_out_of_scope_rate = max_out_of_scope_rate
        paths.append("settings.max_out_of_scope_rate")
    if min_similarity is not None:
        settings.min_similarity = min_similarity
        paths.append("settings.min_similarity")
    if tools is not None:
        settings.tools.extend(
            tpl_pb.Tool(name=t.name, description=t.description, parameters=t.parameters) for t in _tools(tools)
        )
        paths.append("settings.tools")
    if not paths:
        raise typer.BadParameter("give at least one setting to change")
    with _client(server, token) as client:
        updated = _call(
            client.templates.UpdateCollection,
            tpl_svc.UpdateCollectionRequest(collection=message, update_mask=FieldMask(paths=paths)),
            client,
        )
    typer.echo(_collection_yaml(updated), nl=False)


# -- report ------------------------------------------------------------------


@app.command()
def report(
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write.")] = Path("report.html"),
    collection: Annotated[str, typer.Option(help="One collection; default all.")] = "",
    window: Annotated[float, typer.Option(help="Seconds back; 0 = since the server started.")] = 0.0,
    top: Annotated[int, typer.Option(help="Top templates to show.")] = 10,
    server: Server = None,
    token: Token = None,
) -> None:
    """Write a self-contained HTML savings report: hit rate over time, money, top templates."""
    from plancache.report import SLICES, render_report

    with _client(server, token) as client:
        request = stats_pb.GetStatsRequest(collection=collection, top=top)
        if window:
            request.window.CopyFrom(Duration(seconds=int(window)))
        span = window
        if not span:
            first = _call(client.stats.GetStats, request, client)
            span = max(time.time() - first.since.ToMicroseconds() / 1e6, 1.0)
        request.bucket.FromNanoseconds(max(int(span / SLICES * 1e9), 1_000_000))
        response = _call(client.stats.GetStats, request, client)
    title = f"plancache savings: {collection or 'all collections'}"
    output.write_text(render_report(response, title=title), encoding="utf-8")
    typer.echo(f"wrote {output} ({response.lookups} lookups, hit rate {response.hit_rate:.1%}, "
               f"saved ${response.saved_usd:.4f}, spent ${response.spent_usd:.4f}; "
               f"window {format_duration(Duration(seconds=int(span)).ToTimedelta())})")
