"""The ``plancache`` command: run the server, and talk to one over gRPC."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import random
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import grpc
import typer
import yaml
from google.protobuf import json_format

from plancache.client import DEFAULT_SERVER, Client, connect
from plancache.convert import dict_to_struct
from plancache.v1 import plan_service_pb2 as plan_pb
from plancache.v1 import stats_service_pb2 as stats_pb
from plancache.v1 import template_pb2 as tpl_pb
from plancache.v1 import template_service_pb2 as tpl_svc

app = typer.Typer(
    help="plancache: a plan cache for LLM agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
templates_app = typer.Typer(help="Curate templates.", no_args_is_help=True)
exemplars_app = typer.Typer(help="Add phrasings to templates.", no_args_is_help=True)
collections_app = typer.Typer(help="Curate collections.", no_args_is_help=True)
app.add_typer(templates_app, name="templates")
app.add_typer(exemplars_app, name="exemplars")
app.add_typer(collections_app, name="collections")

Server = Annotated[
    str | None,
    typer.Option("--server", "-s", help="host:port of a plancache server [env PLANCACHE_SERVER]"),
]
Token = Annotated[str | None, typer.Option("--token", help="API token [env PLANCACHE_TOKEN]")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the full response as JSON.")]


def _client(server: str | None, token: str | None) -> Client:
    return connect(server, token=token)


def _call(method: Any, request: Any, client: Client, timeout: float = 60.0) -> Any:
    try:
        return method(request, timeout=timeout, metadata=client.metadata)
    except grpc.RpcError as exc:
        code = exc.code().name if hasattr(exc, "code") else "ERROR"
        details = exc.details() if hasattr(exc, "details") else str(exc)
        typer.echo(f"error: {code}: {details}", err=True)
        raise typer.Exit(2) from exc


def _print_json(message: Any) -> None:
    typer.echo(json_format.MessageToJson(message, indent=2, preserving_proto_field_name=True))


def _all_templates(
    client: Client,
    collection: str,
    status: tpl_pb.TemplateStatus = tpl_pb.TEMPLATE_STATUS_UNSPECIFIED,
    tag: str = "",
) -> list[tpl_pb.Template]:
    """Every template of a collection (current versions), page after page."""
    found: list[tpl_pb.Template] = []
    page = ""
    while True:
        response = _call(
            client.templates.ListTemplates,
            tpl_svc.ListTemplatesRequest(
                collection=collection, status=status, tag=tag, page_size=1000, page_token=page
            ),
            client,
        )
        found += response.templates
        page = response.next_page_token
        if not page:
            return found


def _parse_params(items: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"{item!r}: use name=value")
        try:
            values[name] = json.loads(raw) if raw[:1] in "{[" or raw in ("true", "false") else raw
        except json.JSONDecodeError:
            values[name] = raw
    return values


@app.command()
def serve(
    listen: Annotated[str | None, typer.Option(help="host:port to listen on [env PLANCACHE_LISTEN]")] = None,
    store: Annotated[
        str | None,
        typer.Option(help="folder of the embedded store, or http(s):// URL of Qdrant [env PLANCACHE_STORE]"),
    ] = None,
    seed: Annotated[
        str | None,
        typer.Option(help="folder of collection files imported when missing [env PLANCACHE_SEED_COLLECTIONS]"),
    ] = None,
) -> None:
    """Run the gRPC server until Ctrl-C."""
    from plancache.config import Settings
    from plancache.logs import configure_logging
    from plancache.server import serve as run

    settings = Settings.from_env(listen=listen, store=store, seed_collections=seed)
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(run(settings))


@app.command()
def lookup(
    collection: str,
    intent: str,
    param: Annotated[list[str], typer.Option("--param", "-p", help="name=value, repeatable")] = [],  # noqa: B006
    no_plan: Annotated[bool, typer.Option(help="Do not plan on a miss.")] = False,
    bypass: Annotated[bool, typer.Option(help="Skip the cache.")] = False,
    min_similarity: Annotated[float, typer.Option(help="Per-call similarity floor.")] = 0.0,
    server: Server = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Look up a plan for INTENT in COLLECTION."""
    with _client(server, token) as client:
        request = plan_pb.LookupRequest(
            collection=collection,
            intent=intent,
            parameters=dict_to_struct(_parse_params(param)),
            options=plan_pb.LookupOptions(
                bypass_cache=bypass, no_plan_on_miss=no_plan, min_similarity=min_similarity
            ),
        )
        response = _call(client.plans.Lookup, request, client)
    if as_json:
        _print_json(response)
        return
    outcome = plan_pb.LookupOutcome.Name(response.outcome).removeprefix("LOOKUP_OUTCOME_")
    ev = response.evidence
    typer.echo(f"{outcome}  template={response.plan.template_id or ev.template_id or '-'}  "
               f"score={ev.score:.3f} threshold={ev.threshold:.3f} similarity={ev.similarity:.3f}  "
               f"{response.timings.total_ms:.1f} ms")
    if response.outcome == plan_pb.LOOKUP_OUTCOME_MISS:
        reason = plan_pb.MissReason.Name(response.miss_reason).removeprefix("MISS_REASON_").lower()
        typer.echo(f"miss: {reason}: {response.miss_detail}")
        return
    for step in response.plan.steps:
        kind = "tool " + step.tool if step.kind == tpl_pb.STEP_KIND_TOOL else "llm/" + step.tier
        after = f" after {', '.join(step.depends_on)}" if step.depends_on else ""
        typer.echo(f"  {step.id} [{kind}]{after}: {step.instruction}")
    if response.plan.unbound_parameters:
        typer.echo(f"unbound: {', '.join(response.plan.unbound_parameters)}")


# -- templates --------------------------------------------------------------


@templates_app.command("import")
def templates_import(
    path: Path,
    collection: Annotated[str | None, typer.Option(help="Import into this collection.")] = None,
    dry_run: Annotated[bool, typer.Option(help="Validate only.")] = False,
    replace: Annotated[bool, typer.Option(help="Store clashing ids as new versions.")] = False,
    server: Server = None,
    token: Token = None,
) -> None:
    """Import a YAML or JSON Lines collection file; all or nothing."""
    content = path.read_text(encoding="utf-8")
    fmt = tpl_svc.TEMPLATE_FORMAT_JSONL if path.suffix in (".jsonl", ".ndjson") else tpl_svc.TEMPLATE_FORMAT_YAML
    with _client(server, token) as client:
        response = _call(
            client.templates.ImportTemplates,
            tpl_svc.ImportTemplatesRequest(
                content=content, format=fmt, source_name=str(path), collection=collection or "",
                dry_run=dry_run, replace=replace,
            ),
            client,
            timeout=600,
        )
    verb = "would import" if dry_run else "imported"
    typer.echo(f"{verb} into {response.collection}: {response.created} created, "
               f"{response.updated} updated, {response.exemplars} exemplars")


@templates_app.command("export")
def templates_export(
    collection: str,
    fmt: Annotated[str, typer.Option("--format", help="yaml or jsonl")] = "yaml",
    all_versions: Annotated[bool, typer.Option(help="jsonl: every version.")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write.")] = None,
    server: Server = None,
    token: Token = None,
) -> None:
    """Export a collection to stdout or a file."""
    if fmt not in ("yaml", "jsonl"):
        raise typer.BadParameter("--format is yaml or jsonl")
    with _client(server, token) as client:
        response = _call(
            client.templates.ExportTemplates,
            tpl_svc.ExportTemplatesRequest(
                collection=collection,
                format=tpl_svc.TEMPLATE_FORMAT_JSONL if fmt == "jsonl" else tpl_svc.TEMPLATE_FORMAT_YAML,
                all_versions=all_versions,
            ),
            client,
        )
    if output:
        output.write_text(response.content, encoding="utf-8")
    else:
        sys.stdout.write(response.content)


@templates_app.command("list")
def templates_list(
    collection: str,
    status: Annotated[str | None, typer.Option(help="active, candidate or disabled")] = None,
    tag: Annotated[str | None, typer.Option(help="Only with this tag.")] = None,
    server: Server = None,
    token: Token = None,
) -> None:
    """List a collection's templates."""
    statuses = {
        "active": tpl_pb.TEMPLATE_STATUS_ACTIVE,
        "candidate": tpl_pb.TEMPLATE_STATUS_CANDIDATE,
        "disabled": tpl_pb.TEMPLATE_STATUS_DISABLED,
    }
    if status and status not in statuses:
        raise typer.BadParameter("--status is active, candidate or disabled")
    with _client(server, token) as client:
        listed = _all_templates(client, collection, statuses.get(status or "", tpl_pb.TEMPLATE_STATUS_UNSPECIFIED), tag or "")
    now = datetime.now(UTC)
    for t in listed:
        state = tpl_pb.TemplateStatus.Name(t.status).removeprefix("TEMPLATE_STATUS_").lower()
        if t.status == tpl_pb.TEMPLATE_STATUS_ACTIVE and t.HasField("expires_at") and (
            t.expires_at.ToDatetime(tzinfo=UTC) <= now
        ):
            state = "expired"  # past its TTL: Lookup no longer serves it; the sweeper disables it
        typer.echo(f"{t.id:32} v{t.version:<3} {state:9} {len(t.steps)} steps  "
                   f"{len(t.exemplars)} exemplars  {t.description}")


@templates_app.command("show")
def templates_show(
    collection: str,
    template_id: str,
    version: Annotated[int, typer.Option(help="A version; 0 is the current one.")] = 0,
    fmt: Annotated[str, typer.Option("--format", help="json, or yaml to edit and pass to 'templates update'")] = "json",
    server: Server = None,
    token: Token = None,
) -> None:
    """Show one template as JSON (or YAML)."""
    if fmt not in ("json", "yaml"):
        raise typer.BadParameter("--format is json or yaml")
    with _client(server, token) as client:
        response = _call(
            client.templates.GetTemplate,
            tpl_svc.GetTemplateRequest(collection=collection, template_id=template_id, version=version),
            client,
        )
    if fmt == "yaml":
        from plancache._cli_curation import template_yaml

        typer.echo(template_yaml(response), nl=False)
        return
    _print_json(response)


@templates_app.command("warm")
def templates_warm(
    intents: Annotated[Path, typer.Option("--intents", help="File with one intent a line.")],
    collection: Annotated[str, typer.Option(help="Collection to plan for.")],
    poll_interval: Annotated[float, typer.Option(help="Seconds between batch status polls.")] = 10.0,
    max_wait: Annotated[float, typer.Option(help="Give up (and cancel the batch) after this many seconds.")] = 3600.0,
    server: Server = None,
    token: Token = None,
) -> None:
    """Plan a list of intents through the Message Batches API and store them as candidates."""
    from plancache.config import Settings
    from plancache.convert import collection_from_proto
    from plancache.errors import PlancacheError
    from plancache.pricing import PriceTable
    from plancache.templatefile import dump_jsonl

    # The planner runs here, with this machine's Settings (API key, model,
    # tiers, prices), and the candidates reach the server as a JSONL import:
    # unlike CreateTemplate, ImportTemplates keeps them marked as planned with
    # their planning cost (so hits after approval count what they saved), and
    # stores the whole list or nothing.
    settings = Settings.from_env()
    if not settings.anthropic_api_key:
        typer.echo("error: set ANTHROPIC_API_KEY to plan (the batch runs from this machine)", err=True)
        raise typer.Exit(2)
    from planner import AnthropicPlanner, read_intents

    lines = read_intents(intents)
    if not lines:
        raise typer.BadParameter(f"{intents}: no intents (one a line; # starts a comment)")
    with _client(server, token) as client:
        wanted = _call(client.templates.GetCollection, tpl_svc.GetCollectionRequest(name=collection), client)
        existing = {t.id for t in _all_templates(client, collection)}
        target = collection_from_proto(wanted)
        prices = PriceTable.from_file(settings.prices_file) if settings.prices_file else PriceTable()

        async def plan() -> Any:
            planner = AnthropicPlanner.from_settings(settings, prices)
            try:
                return await planner.warm_up(
                    target, lines, poll_interval_s=poll_interval, max_wait_s=max_wait
                )
            finally:
                await planner.close()

        try:
            warmed = asyncio.run(plan())
        except PlancacheError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc

        candidates = []
        for template in warmed.templates:
            template_id, suffix = template.id, 2
            while template_id in existing:
                template_id, suffix = f"{template.id}_{suffix}", suffix + 1
            existing.add(template_id)
            candidates.append(template.model_copy(update={"id": template_id}))
        if candidates:
            _call(
                client.templates.ImportTemplates,
                tpl_svc.ImportTemplatesRequest(
                    content=dump_jsonl(target, candidates), format=tpl_svc.TEMPLATE_FORMAT_JSONL,
                    source_name=f"warm-{collection}.jsonl", collection=collection,
                ),
                client,
                timeout=600,
            )
    for intent, reason in warmed.failures:
        typer.echo(f"failed: {intent!r}: {reason}", err=True)
    usage = warmed.usage
    typer.echo(f"planned {len(candidates)} of {len(lines)} intents as candidates in {collection} "
               f"(batches {', '.join(warmed.batch_ids)})")
    typer.echo(f"tokens in {usage.total_input} (cache read {usage.cache_read_tokens}, "
               f"cache write {usage.cache_write_tokens}) out {usage.output_tokens}")
    typer.echo(f"cost ${warmed.cost_usd:.4f} at the batch price; ${warmed.live_cost_usd:.4f} live "
               f"(saved ${warmed.saved_usd:.4f})")
    for template in candidates:
        typer.echo(f"  {template.id}: {template.description}")
    if warmed.failures:
        raise typer.Exit(1)


# -- exemplars --------------------------------------------------------------


@exemplars_app.command("add")
def exemplars_add(
    collection: str,
    template_id: str,
    text: list[str],
    server: Server = None,
    token: Token = None,
) -> None:
    """Add phrasings to a template ({{name}} marks a value)."""
    with _client(server, token) as client:
        response = _call(
            client.templates.AddExemplars,
            tpl_svc.AddExemplarsRequest(collection=collection, template_id=template_id, exemplars=text),
            client,
        )
    typer.echo(f"added {response.added}, {response.duplicates} duplicates")


def choose_exemplars(
    path: Path,
    *,
    text_column: str,
    label_column: str,
    k: int,
    seed: int,
    templates: dict[str, set[str]],
    slot_type_column: str = "entity_type",
    slot_start_column: str = "start_offset",
    slot_end_column: str = "end_offset",
) -> tuple[dict[str, list[str]], list[int]]:
    """K rows per label whose template exists, seeded; a slot the template declares is masked."""
    by_label: dict[str, list[tuple[int, dict[str, str]]]] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {text_column, label_column} - set(reader.fieldnames or ())
        if missing:
            raise typer.BadParameter(f"{path}: no column(s) {', '.join(sorted(missing))}")
        for index, row in enumerate(reader):
            if row[label_column] in templates:
                by_label.setdefault(row[label_column], []).append((index, row))
    rng = random.Random(seed)
    chosen: dict[str, list[str]] = {}
    used: list[int] = []
    for label in sorted(by_label):
        rows = by_label[label]
        for index, row in rng.sample(rows, min(k, len(rows))):
            text = row[text_column]
            slot = row.get(slot_type_column) or ""
            if slot and slot in templates[label]:
                try:
                    start, end = int(row[slot_start_column]), int(row[slot_end_column])
                    text = text[:start] + "{{" + slot + "}}" + text[end:]
                except (ValueError, KeyError):
                    pass
            # A brace in the customer's text is not a placeholder.
            if text.count("{{") != text.count("}}"):
                continue
            chosen.setdefault(label, []).append(text)
            used.append(index)
    return chosen, used


@exemplars_app.command("from-csv")
def exemplars_from_csv(
    collection: str,
    path: Path,
    text_column: Annotated[str, typer.Option(help="Column with the request text.")] = "instruction",
    label_column: Annotated[str, typer.Option(help="Column with the template id.")] = "intent",
    k: Annotated[int, typer.Option("--k", help="Phrasings per template.")] = 10,
    seed: Annotated[int, typer.Option(help="Seed of the random choice.")] = 0,
    record: Annotated[Path | None, typer.Option(help="Write the chosen row numbers here (for replay --skip-rows).")] = None,
    server: Server = None,
    token: Token = None,
) -> None:
    """Attach K phrasings per template from a labelled CSV (label = template id)."""
    if k < 1:
        raise typer.BadParameter("--k must be at least 1")
    with _client(server, token) as client:
        templates = {t.id: {p.name for p in t.parameters} for t in _all_templates(client, collection)}
        chosen, used = choose_exemplars(
            path, text_column=text_column, label_column=label_column, k=k, seed=seed, templates=templates
        )
        added = duplicates = 0
        for template_id, texts in chosen.items():
            result = _call(
                client.templates.AddExemplars,
                tpl_svc.AddExemplarsRequest(collection=collection, template_id=template_id, exemplars=texts),
                client,
            )
            added += result.added
            duplicates += result.duplicates
    if record:
        record.write_text("\n".join(str(i) for i in sorted(used)) + "\n", encoding="utf-8")
    typer.echo(f"{len(chosen)} templates: added {added} exemplars, {duplicates} duplicates")


# -- collections -------------------------------------------------------------


@collections_app.command("list")
def collections_list(server: Server = None, token: Token = None) -> None:
    """List collections."""
    with _client(server, token) as client:
        response = _call(client.templates.ListCollections, tpl_svc.ListCollectionsRequest(), client)
    for c in response.collections:
        typer.echo(f"{c.name:24} {c.template_count} templates  {c.exemplar_count} exemplars  {c.description}")


@collections_app.command("delete")
def collections_delete(name: str, server: Server = None, token: Token = None) -> None:
    """Delete a collection and all its templates."""
    with _client(server, token) as client:
        response = _call(client.templates.DeleteCollection, tpl_svc.DeleteCollectionRequest(name=name), client)
    typer.echo(f"deleted {name}: {response.templates_deleted} templates")


# -- stats and replay ----------------------------------------------------------


@app.command()
def stats(
    collection: Annotated[str, typer.Option(help="One collection; default all.")] = "",
    window: Annotated[float, typer.Option(help="Seconds back; 0 = since start.")] = 0.0,
    top: Annotated[int, typer.Option(help="Top templates to list.")] = 10,
    server: Server = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Hit rate, miss reasons, latency and money."""
    from google.protobuf.duration_pb2 import Duration

    request = stats_pb.GetStatsRequest(collection=collection, top=top)
    if window:
        request.window.CopyFrom(Duration(seconds=int(window)))
    with _client(server, token) as client:
        response = _call(client.stats.GetStats, request, client)
    if as_json:
        _print_json(response)
        return
    typer.echo(f"lookups {response.lookups}  hits {response.hits}  misses {response.misses}  "
               f"planned {response.planned}  hit rate {response.hit_rate:.1%}")
    typer.echo(f"latency p50 {response.latency_p50_ms:.1f} ms  p99 {response.latency_p99_ms:.1f} ms")
    typer.echo(f"planner calls {response.planner_calls}  tokens in {response.planner_input_tokens} "
               f"(cache read {response.planner_cache_read_tokens}) out {response.planner_output_tokens}")
    typer.echo(f"spent ${response.spent_usd:.4f}  saved ${response.saved_usd:.4f} "
               f"({response.saved_tokens} tokens)")
    if response.miss_reasons:
        typer.echo("misses: " + ", ".join(f"{m.reason} {m.count}" for m in response.miss_reasons))
    for t in response.top_templates:
        typer.echo(f"  {t.collection}/{t.template_id}: {t.hits} hits, saved ${t.saved_usd:.4f}")


@app.command()
def replay(
    path: Path,
    collection: Annotated[str, typer.Option(help="Collection to look in.")],
    text_column: Annotated[str, typer.Option(help="Column with the request text.")] = "instruction",
    label_column: Annotated[str, typer.Option(help="Column with the expected template id.")] = "intent",
    concurrency: Annotated[int, typer.Option(help="Lookups in flight at once.")] = 8,
    limit: Annotated[int, typer.Option(help="Replay at most this many rows (0 = all).")] = 0,
    skip_rows: Annotated[Path | None, typer.Option(help="File of row numbers to leave out.")] = None,
    plan: Annotated[bool, typer.Option(help="Let misses be planned.")] = False,
    server: Server = None,
    token: Token = None,
) -> None:
    """Send every request of a labelled CSV through Lookup and report hit and wrong rates."""
    from rich.progress import Progress

    from plancache.replay import read_requests
    from plancache.replay import replay as run

    if concurrency < 1:
        raise typer.BadParameter("--concurrency must be at least 1")
    skip = {int(x) for x in skip_rows.read_text().split()} if skip_rows else None
    requests = read_requests(
        str(path), text_column=text_column, label_column=label_column, skip_rows=skip, limit=limit or None
    )
    with _client(server, token) as client:
        labels = {
            t.id for t in _all_templates(client, collection)
            if t.status == tpl_pb.TEMPLATE_STATUS_ACTIVE
        }
        metadata = client.metadata
    address = server or os.environ.get("PLANCACHE_SERVER") or DEFAULT_SERVER
    with Progress(transient=True) as progress:
        task = progress.add_task("replaying", total=len(requests))
        report = asyncio.run(
            run(
                address, collection, requests, labels, concurrency=concurrency, plan_on_miss=plan,
                metadata=metadata, progress=lambda n: progress.advance(task, n),
            )
        )
    for line in report.lines():
        typer.echo(line)


# Curation commands and the savings report live in their own module;
# importing it adds them to the groups above.
from plancache import _cli_curation  # noqa: E402, F401


def main() -> None:
    """The console entry point: a user's mistake is one line on stderr, not a traceback."""
    from pydantic import ValidationError as PydanticValidationError

    from plancache.errors import PlancacheError

    try:
        app()
    except (OSError, UnicodeDecodeError, PlancacheError, PydanticValidationError, yaml.YAMLError) as exc:
        message = str(exc)
        if isinstance(exc, OSError) and exc.filename:
            message = f"{exc.strerror}: {exc.filename}"
        elif isinstance(exc, PydanticValidationError):
            message = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
                for e in exc.errors()
            )
        typer.echo(f"error: {message}", err=True)
        raise SystemExit(2) from None
