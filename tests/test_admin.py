"""Curation through the gRPC API: versions, rollback, status, TTL, collections, round trips."""

from __future__ import annotations

import asyncio
import time

import grpc
import numpy as np
import pytest
import yaml
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask
from typer.testing import CliRunner

from plancache.cli import app
from plancache.config import Settings
from plancache.convert import dict_to_struct
from plancache.store import Exemplar
from plancache.v1 import plan_service_pb2 as plan_pb
from plancache.v1 import plan_service_pb2_grpc as plan_grpc
from plancache.v1 import template_pb2 as tpl
from plancache.v1 import template_service_pb2 as tpl_pb
from plancache.v1 import template_service_pb2_grpc as tpl_grpc

C = "customer-support"
CANCEL = "I want to cancel order 4471-X"


def _lookup(intent: str, **params) -> plan_pb.LookupRequest:
    return plan_pb.LookupRequest(
        collection=C, intent=intent, parameters=dict_to_struct(params),
        options=plan_pb.LookupOptions(no_plan_on_miss=True),
    )


async def _get(templates, template_id: str, version: int = 0) -> tpl.Template:
    return await templates.GetTemplate(
        tpl_pb.GetTemplateRequest(collection=C, template_id=template_id, version=version)
    )


def _edited(template: tpl.Template, marker: str) -> tpl.Template:
    changed = tpl.Template()
    changed.CopyFrom(template)
    changed.ClearField("counters")
    changed.status = tpl.TEMPLATE_STATUS_UNSPECIFIED
    changed.steps[-1].instruction = f"{marker}: " + changed.steps[-1].instruction
    return changed


async def _export(templates, fmt: int) -> str:
    response = await templates.ExportTemplates(tpl_pb.ExportTemplatesRequest(collection=C, format=fmt))
    return response.content


@pytest.mark.parametrize("fmt", [tpl_pb.TEMPLATE_FORMAT_YAML, tpl_pb.TEMPLATE_FORMAT_JSONL])
async def test_export_delete_import_restores_the_collection(channel, fmt):
    """Export, delete and import give back an identical export, versions and learned phrasings too."""
    templates = tpl_grpc.TemplateServiceStub(channel)
    current = await _get(templates, "cancel_order")
    await templates.UpdateTemplate(tpl_pb.UpdateTemplateRequest(template=_edited(current, "v2")))
    await templates.AddExemplars(tpl_pb.AddExemplarsRequest(
        collection=C, template_id="track_order", exemplars=["has parcel {{order_id}} left yet"],
    ))
    await templates.SetTemplateStatus(tpl_pb.SetTemplateStatusRequest(
        collection=C, template_id="place_order", status=tpl.TEMPLATE_STATUS_DISABLED,
    ))
    before = await _export(templates, fmt)

    await templates.DeleteCollection(tpl_pb.DeleteCollectionRequest(name=C))
    suffix = ".jsonl" if fmt == tpl_pb.TEMPLATE_FORMAT_JSONL else ".yaml"
    await templates.ImportTemplates(
        tpl_pb.ImportTemplatesRequest(content=before, format=fmt, source_name="export" + suffix)
    )

    assert await _export(templates, fmt) == before
    restored = await _get(templates, "cancel_order")
    assert restored.version == 2 and restored.steps[-1].instruction.startswith("v2: ")
    assert (await _get(templates, "place_order")).status == tpl.TEMPLATE_STATUS_DISABLED


async def test_update_serves_the_new_version_and_rollback_the_old(channel):
    """UpdateTemplate stores version 2 and Lookup serves it; rolling back to 1 serves 1's content as 3."""
    templates = tpl_grpc.TemplateServiceStub(channel)
    plans = plan_grpc.PlanServiceStub(channel)
    original = await _get(templates, "cancel_order")
    first = await plans.Lookup(_lookup(CANCEL, order_id="4471-X"))
    assert first.plan.template_id == "cancel_order" and first.plan.template_version == 1

    updated = await templates.UpdateTemplate(
        tpl_pb.UpdateTemplateRequest(template=_edited(original, "NEW"), expected_version=1)
    )
    assert updated.version == 2
    served = await plans.Lookup(_lookup(CANCEL, order_id="4471-X"))
    assert served.outcome == plan_pb.LOOKUP_OUTCOME_HIT
    assert served.plan.template_version == 2
    assert served.plan.steps[-1].instruction.startswith("NEW: ")

    restored = await templates.RollbackTemplate(
        tpl_pb.RollbackTemplateRequest(collection=C, template_id="cancel_order", version=1)
    )
    assert restored.version == 3
    served = await plans.Lookup(_lookup(CANCEL, order_id="4471-X"))
    assert served.plan.template_version == 3
    assert [s.instruction for s in served.plan.steps] == [s.instruction for s in first.plan.steps]

    versions = await templates.ListTemplateVersions(
        tpl_pb.ListTemplateVersionsRequest(collection=C, template_id="cancel_order")
    )
    assert [v.version for v in versions.versions] == [1, 2, 3]
    assert versions.versions[0].steps == original.steps


async def test_stale_expected_version_is_aborted_and_stores_nothing(channel):
    """An update based on a version no longer current gets ABORTED; nothing is stored."""
    templates = tpl_grpc.TemplateServiceStub(channel)
    original = await _get(templates, "cancel_order")
    await templates.UpdateTemplate(
        tpl_pb.UpdateTemplateRequest(template=_edited(original, "first"), expected_version=1)
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await templates.UpdateTemplate(
            tpl_pb.UpdateTemplateRequest(template=_edited(original, "second"), expected_version=1)
        )
    assert caught.value.code() == grpc.StatusCode.ABORTED
    assert "version 2" in caught.value.details() and "read it again" in caught.value.details()
    current = await _get(templates, "cancel_order")
    assert current.version == 2 and current.steps[-1].instruction.startswith("first: ")


def test_forced_updates_racing_each_other_all_land(demo_cache):
    """Updates without expected_version (what --force sends) from ten threads at once
    each store a version; none is refused because another took its number first."""
    from concurrent.futures import ThreadPoolExecutor

    current = demo_cache.store.get_template("customer-support", "track_order")

    def update(n: int):
        steps = [s.model_copy(update={"instruction": f"{s.instruction} ({n})"}) for s in current.steps]
        return demo_cache.update_template(current.model_copy(update={"steps": steps}))

    with ThreadPoolExecutor(10) as pool:
        stored = list(pool.map(update, range(10)))

    assert sorted(t.version for t in stored) == list(range(current.version + 1, current.version + 11))
    assert demo_cache.store.get_template("customer-support", "track_order").version == current.version + 10


async def test_update_replaces_curated_phrasings_and_keeps_learned_ones(channel, demo_cache):
    """The new version's exemplars replace the curated ones; phrasings added since stay."""
    templates = tpl_grpc.TemplateServiceStub(channel)
    await templates.AddExemplars(tpl_pb.AddExemplarsRequest(
        collection=C, template_id="cancel_order", exemplars=["scrap my order {{order_id}} please"],
    ))
    changed = _edited(await _get(templates, "cancel_order"), "v2")
    del changed.exemplars[1:]
    changed.exemplars.append("abort purchase {{order_id}} right now")
    await templates.UpdateTemplate(tpl_pb.UpdateTemplateRequest(template=changed))

    stored = {
        (e.text, e.source) for e in demo_cache.store.exemplars(C, "positive")
        if e.template_id == "cancel_order"
    }
    assert stored == {
        ("please cancel my order {{order_id}}, I no longer need it", "curated"),
        ("abort purchase {{order_id}} right now", "curated"),
        ("scrap my order {{order_id}} please", "added"),
    }


async def test_status_disable_and_approve(channel):
    """A disabled template is not served; approving it serves it again; CANDIDATE is refused."""
    templates = tpl_grpc.TemplateServiceStub(channel)
    plans = plan_grpc.PlanServiceStub(channel)

    async def set_status(status):
        return await templates.SetTemplateStatus(
            tpl_pb.SetTemplateStatusRequest(collection=C, template_id="cancel_order", status=status)
        )

    disabled = await set_status(tpl.TEMPLATE_STATUS_DISABLED)
    assert disabled.status == tpl.TEMPLATE_STATUS_DISABLED and disabled.version == 1
    response = await plans.Lookup(_lookup(CANCEL, order_id="4471-X"))
    assert response.plan.template_id != "cancel_order"
    await set_status(tpl.TEMPLATE_STATUS_ACTIVE)
    response = await plans.Lookup(_lookup(CANCEL, order_id="4471-X"))
    assert response.plan.template_id == "cancel_order"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await set_status(tpl.TEMPLATE_STATUS_CANDIDATE)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_delete_template_removes_every_version(channel, demo_cache):
    """DeleteTemplate removes the template, its versions and exemplars."""
    templates = tpl_grpc.TemplateServiceStub(channel)
    await templates.UpdateTemplate(
        tpl_pb.UpdateTemplateRequest(template=_edited(await _get(templates, "cancel_order"), "v2"))
    )
    response = await templates.DeleteTemplate(
        tpl_pb.DeleteTemplateRequest(collection=C, template_id="cancel_order")
    )
    assert response.versions_deleted == 2
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _get(templates, "cancel_order")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert not [e for e in demo_cache.store.exemplars(C) if e.template_id == "cancel_order"]


async def test_invalidate_by_tag_and_by_age(channel):
    """Invalidate disables templates by tag or by age, and wants at least one of them."""
    templates = tpl_grpc.TemplateServiceStub(channel)
    listed = await templates.ListTemplates(tpl_pb.ListTemplatesRequest(collection=C, tag="invoice"))
    tagged = sorted(t.id for t in listed.templates)
    assert tagged

    response = await templates.InvalidateTemplates(
        tpl_pb.InvalidateTemplatesRequest(collection=C, tag="invoice")
    )
    assert sorted(response.template_ids) == tagged
    for template_id in tagged:
        assert (await _get(templates, template_id)).status == tpl.TEMPLATE_STATUS_DISABLED

    young = await templates.InvalidateTemplates(
        tpl_pb.InvalidateTemplatesRequest(collection=C, older_than=Duration(seconds=30 * 86400))
    )
    assert list(young.template_ids) == []
    await asyncio.sleep(0.01)
    everything = await templates.InvalidateTemplates(
        tpl_pb.InvalidateTemplatesRequest(collection=C, older_than=Duration(nanos=1_000_000))
    )
    assert len(everything.template_ids) == 27 - len(tagged)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await templates.InvalidateTemplates(tpl_pb.InvalidateTemplatesRequest(collection=C))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_update_collection_by_mask(channel):
    """UpdateCollection changes only the masked fields; a catalogue that breaks templates is refused."""
    templates = tpl_grpc.TemplateServiceStub(channel)
    before = await templates.GetCollection(tpl_pb.GetCollectionRequest(name=C))
    change = tpl.Collection(
        name=C, description="ignored: not in the mask",
        settings=tpl.CollectionSettings(default_ttl=Duration(seconds=7 * 86400), min_similarity=0.5),
    )
    after = await templates.UpdateCollection(tpl_pb.UpdateCollectionRequest(
        collection=change, update_mask=FieldMask(paths=["settings.default_ttl", "settings.min_similarity"]),
    ))
    assert after.settings.default_ttl.seconds == 7 * 86400
    assert after.settings.min_similarity == 0.5
    assert after.description == before.description
    assert after.settings.tools == before.settings.tools
    cancel = await _get(templates, "cancel_order")
    assert cancel.expires_at.seconds == cancel.updated_at.seconds + 7 * 86400

    without_tools = tpl.Collection(name=C, settings=tpl.CollectionSettings(tools=before.settings.tools[:1]))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await templates.UpdateCollection(tpl_pb.UpdateCollectionRequest(
            collection=without_tools, update_mask=FieldMask(paths=["settings.tools"]),
        ))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "template 'cancel_order'" in caught.value.details()
    for bad in (["name"], ["settings.max_wrong_rate"]):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await templates.UpdateCollection(tpl_pb.UpdateCollectionRequest(
                collection=tpl.Collection(name=C), update_mask=FieldMask(paths=bad),
            ))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    unchanged = await templates.GetCollection(tpl_pb.GetCollectionRequest(name=C))
    assert unchanged.settings.tools == before.settings.tools


async def test_sweeper_disables_an_expired_template(start_server):
    """With a short TTL, the sweeper disables the template and Lookup stops serving it."""
    server = await start_server(Settings(sweep_interval_s=0.1))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        templates = tpl_grpc.TemplateServiceStub(channel)
        short = _edited(await _get(templates, "cancel_order"), "short")
        short.ttl.CopyFrom(Duration(seconds=1))
        await templates.UpdateTemplate(tpl_pb.UpdateTemplateRequest(template=short))

        deadline = time.monotonic() + 10
        while (await _get(templates, "cancel_order")).status != tpl.TEMPLATE_STATUS_DISABLED:
            assert time.monotonic() < deadline, "the sweeper did not disable the expired template"
            await asyncio.sleep(0.1)

        response = await plan_grpc.PlanServiceStub(channel).Lookup(_lookup(CANCEL, order_id="1"))
        assert response.plan.template_id != "cancel_order"
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await templates.SetTemplateStatus(tpl_pb.SetTemplateStatusRequest(
                collection=C, template_id="cancel_order", status=tpl.TEMPLATE_STATUS_ACTIVE,
            ))
        assert "update it first" in caught.value.details()


@pytest.mark.parametrize("backend", ["embedded", "qdrant"])
def test_store_deletes_exemplars_of_its_collection_only(tmp_path, backend):
    """delete_exemplars removes the given exemplars and counts only those it held."""
    from plancache.store.embedded import EmbeddedStore
    from plancache.templates import Collection, Template

    if backend == "embedded":
        store = EmbeddedStore(str(tmp_path / "s"), dimension=4)
    else:
        from qdrant_client import QdrantClient

        from plancache.store.qdrant_server import QdrantServerStore

        store = QdrantServerStore(dimension=4, client=QdrantClient(location=":memory:"))
    try:
        vectors = np.eye(4, dtype=np.float32)
        for name in ("a", "b"):
            store.create_collection(Collection(name=name))
            exemplars = [Exemplar(name, "t", f"x{i}", f"x{i}", vectors[i]) for i in range(3)]
            store.write_templates(name, [Template(id="t", version=1)], exemplars)
        doomed = [Exemplar("a", "t", "x0", "x0", vectors[0]).id, Exemplar("b", "t", "x1", "x1", vectors[1]).id]
        assert store.delete_exemplars("a", doomed) == 1
        assert sorted(e.text for e in store.exemplars("a")) == ["x1", "x2"]
        assert len(store.exemplars("b")) == 3
    finally:
        store.close()


async def test_cli_curation_commands(channel, server, tmp_path):
    """The CLI updates from YAML (locked to the version shown), lists versions, rolls back and approves."""
    runner = CliRunner()
    address = ["--server", f"127.0.0.1:{server.port}"]

    async def run(*args: str) -> str:
        result = await asyncio.to_thread(runner.invoke, app, [*args, *address])
        assert result.exit_code == 0, result.output
        return result.output

    shown = yaml.safe_load(await run("templates", "show", C, "cancel_order", "--format", "yaml"))
    assert shown["version"] == 1
    shown["description"] = "Cancel, edited from the CLI."
    edited = tmp_path / "cancel.yaml"
    edited.write_text(yaml.safe_dump(shown))
    assert "cancel_order: version 2" in await run("templates", "update", str(edited), "--collection", C)
    stale = await asyncio.to_thread(runner.invoke, app, ["templates", "update", str(edited), "--collection", C, *address])
    assert stale.exit_code == 2 and "ABORTED" in stale.output

    versions = await run("templates", "versions", C, "cancel_order")
    assert "v1" in versions and "v2" in versions
    assert "version 3" in await run("templates", "rollback", C, "cancel_order", "1")
    assert "disabled" in await run("templates", "disable", C, "cancel_order")
    assert "active" in await run("templates", "approve", C, "cancel_order")
    assert "invoice" in (await run("templates", "invalidate", C, "--tag", "invoice"))
    assert "deleted track_order: 1 version" in await run("templates", "delete", C, "track_order")

    await run("collections", "create", "notes", "--description", "Scratch", "--default-ttl", "2d")
    await run("collections", "update", "notes", "--min-similarity", "0.4")
    shown_collection = await run("collections", "show", "notes")
    assert "2d" in shown_collection and "0.4" in shown_collection and "Scratch" in shown_collection
    templates = tpl_grpc.TemplateServiceStub(channel)
    notes = await templates.GetCollection(tpl_pb.GetCollectionRequest(name="notes"))
    assert notes.settings.default_ttl.seconds == 2 * 86400 and notes.settings.min_similarity == 0.4


async def test_templates_list_shows_a_template_past_its_ttl_as_expired(channel, server):
    """Between expiry and the sweeper's next run, the list says expired, not active."""
    templates = tpl_grpc.TemplateServiceStub(channel)
    short = _edited(await _get(templates, "cancel_order"), "short")
    short.ttl.CopyFrom(Duration(seconds=1))
    await templates.UpdateTemplate(tpl_pb.UpdateTemplateRequest(template=short))
    await asyncio.sleep(1.2)

    result = await asyncio.to_thread(
        CliRunner().invoke, app, ["templates", "list", C, "--server", f"127.0.0.1:{server.port}"]
    )

    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split()[2] for line in result.output.splitlines() if line.strip()}
    assert rows["cancel_order"] == "expired" and rows["track_order"] == "active"
