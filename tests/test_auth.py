"""Access: tokens and roles, tenant isolation, actors in the logs, TLS."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
from pathlib import Path

import grpc
import pytest
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc
from structlog.testing import capture_logs

from plancache.auth import parse_tenant_tokens
from plancache.client import connect
from plancache.config import Settings
from plancache.convert import dict_to_struct
from plancache.errors import ConfigurationError
from plancache.v1 import plan_service_pb2 as plan_pb
from plancache.v1 import plan_service_pb2_grpc as plan_grpc
from plancache.v1 import stats_service_pb2 as stats_pb
from plancache.v1 import stats_service_pb2_grpc as stats_grpc
from plancache.v1 import template_pb2 as tpl
from plancache.v1 import template_service_pb2 as tpl_pb
from plancache.v1 import template_service_pb2_grpc as tpl_grpc
from tests.conftest import DEMO

C = "customer-support"
CANCEL = "I want to cancel order 4471-X"


def _as(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


def _lookup(collection: str = C) -> plan_pb.LookupRequest:
    return plan_pb.LookupRequest(
        collection=collection, intent=CANCEL, parameters=dict_to_struct({"order_id": "4471-X"}),
        options=plan_pb.LookupOptions(no_plan_on_miss=True),
    )


async def _refused(call, request, token: str | None) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(request, metadata=_as(token))
    return caught.value.code()


@pytest.fixture
async def guarded(start_server):
    """A server with an admin token and an agent token, and a channel to it."""
    server = await start_server(Settings(admin_token="admin-secret", agent_token="agent-secret"))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield server, channel


async def test_missing_or_wrong_token_is_refused_and_changes_nothing(guarded, demo_cache):
    """No token: UNAUTHENTICATED; a wrong token or role: PERMISSION_DENIED; the store is untouched."""
    _, channel = guarded
    templates = tpl_grpc.TemplateServiceStub(channel)
    before = demo_cache.export(C)
    delete = tpl_pb.DeleteCollectionRequest(name=C)
    assert await _refused(templates.DeleteCollection, delete, None) == grpc.StatusCode.UNAUTHENTICATED
    assert await _refused(templates.DeleteCollection, delete, "guess") == grpc.StatusCode.PERMISSION_DENIED
    assert await _refused(templates.DeleteCollection, delete, "agent-secret") == grpc.StatusCode.PERMISSION_DENIED
    disable = tpl_pb.SetTemplateStatusRequest(
        collection=C, template_id="cancel_order", status=tpl.TEMPLATE_STATUS_DISABLED
    )
    assert await _refused(templates.SetTemplateStatus, disable, "agent-secret") == grpc.StatusCode.PERMISSION_DENIED
    add = tpl_pb.AddExemplarsRequest(collection=C, template_id="cancel_order", exemplars=["drop it"])
    assert await _refused(templates.AddExemplars, add, None) == grpc.StatusCode.UNAUTHENTICATED
    assert demo_cache.export(C) == before

    plans = plan_grpc.PlanServiceStub(channel)
    assert await _refused(plans.Lookup, _lookup(), None) == grpc.StatusCode.UNAUTHENTICATED
    assert await _refused(plans.Lookup, _lookup(), "guess") == grpc.StatusCode.PERMISSION_DENIED
    stats = stats_grpc.StatsServiceStub(channel)
    summary = await stats.GetStats(stats_pb.GetStatsRequest(), metadata=_as("admin-secret"))
    assert summary.lookups == 0, "a refused Lookup is not counted"
    assert await _refused(stats.GetStats, stats_pb.GetStatsRequest(), "agent-secret") == grpc.StatusCode.PERMISSION_DENIED


async def test_each_role_reaches_its_services(guarded):
    """The agent token looks up; the admin token curates, reads stats and looks up; health needs none."""
    _, channel = guarded
    plans = plan_grpc.PlanServiceStub(channel)
    for token in ("agent-secret", "admin-secret"):
        response = await plans.Lookup(_lookup(), metadata=_as(token))
        assert response.lookup_id
    templates = tpl_grpc.TemplateServiceStub(channel)
    listed = await templates.ListCollections(tpl_pb.ListCollectionsRequest(), metadata=_as("admin-secret"))
    assert [c.name for c in listed.collections] == [C]
    stats = await stats_grpc.StatsServiceStub(channel).GetStats(
        stats_pb.GetStatsRequest(), metadata=_as("admin-secret")
    )
    assert stats.lookups == 2
    health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert health.status == health_pb2.HealthCheckResponse.SERVING


async def test_admin_token_alone_leaves_lookup_open(start_server):
    """With only the admin token set, Lookup needs no token and curation does."""
    server = await start_server(Settings(admin_token="admin-secret"))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        response = await plan_grpc.PlanServiceStub(channel).Lookup(_lookup())
        assert response.lookup_id
        templates = tpl_grpc.TemplateServiceStub(channel)
        code = await _refused(templates.ListCollections, tpl_pb.ListCollectionsRequest(), None)
        assert code == grpc.StatusCode.UNAUTHENTICATED


TENANTS = "acme-admin=acme:admin, acme-agent=acme:agent, acme-ops=acme:operator, globex-admin=globex:admin"


async def test_tenants_see_and_serve_only_their_collections(start_server, demo_cache):
    """A tenant's token reaches its own collections; another tenant's look missing; lists are filtered."""
    server = await start_server(Settings(tenant_tokens=TENANTS))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        templates = tpl_grpc.TemplateServiceStub(channel)
        plans = plan_grpc.PlanServiceStub(channel)
        for tenant in ("acme", "globex"):
            await templates.ImportTemplates(
                tpl_pb.ImportTemplatesRequest(
                    content=DEMO.read_text(), collection=f"{tenant}-support", source_name="demo.yaml"
                ),
                metadata=_as(f"{tenant}-admin"),
            )
        acme = await templates.ListCollections(tpl_pb.ListCollectionsRequest(), metadata=_as("acme-admin"))
        assert [(c.name, c.tenant) for c in acme.collections] == [("acme-support", "acme")]

        # Another tenant's collection answers exactly like a missing one.
        missing = await _details(templates.GetCollection, tpl_pb.GetCollectionRequest(name="nope"), "globex-admin")
        hidden = await _details(templates.GetCollection, tpl_pb.GetCollectionRequest(name="acme-support"), "globex-admin")
        assert missing[0] == hidden[0] == grpc.StatusCode.NOT_FOUND
        assert hidden[1] == missing[1].replace("nope", "acme-support")
        for call, request in (
            (templates.ExportTemplates, tpl_pb.ExportTemplatesRequest(collection="acme-support")),
            (templates.DeleteCollection, tpl_pb.DeleteCollectionRequest(name="acme-support")),
            (templates.ImportTemplates, tpl_pb.ImportTemplatesRequest(
                content=DEMO.read_text().replace("collection: customer-support", "collection: acme-support"),
                source_name="demo.yaml", replace=True,
            )),
            (plans.Lookup, _lookup("acme-support")),
        ):
            assert (await _details(call, request, "globex-admin"))[0] == grpc.StatusCode.NOT_FOUND
        assert demo_cache.store.get_template("acme-support", "cancel_order").version == 1

        hit = await plans.Lookup(_lookup("acme-support"), metadata=_as("acme-agent"))
        assert hit.outcome == plan_pb.LOOKUP_OUTCOME_HIT and hit.plan.collection == "acme-support"
        for name in (C, "globex-support"):
            assert (await _details(plans.Lookup, _lookup(name), "acme-agent"))[0] == grpc.StatusCode.NOT_FOUND
        feedback = plan_pb.FeedbackRequest(lookup_id=hit.lookup_id, outcome=plan_pb.FEEDBACK_OUTCOME_WRONG_PLAN)
        assert (await _details(plans.Feedback, feedback, "globex-admin"))[0] == grpc.StatusCode.NOT_FOUND
        assert demo_cache.store.counters("acme-support")["cancel_order"].wrong_plan_reports == 0

        assert (await _execute(plans, hit.plan_handle, "acme-agent")) is None
        assert (await _execute(plans, hit.plan_handle, "globex-admin")) == grpc.StatusCode.NOT_FOUND

        assert await _refused(templates.ListCollections, tpl_pb.ListCollectionsRequest(), "acme-agent") \
            == grpc.StatusCode.PERMISSION_DENIED
        assert await _refused(plans.Lookup, _lookup("acme-support"), None) == grpc.StatusCode.UNAUTHENTICATED
        foreign = tpl_pb.CreateCollectionRequest(collection=tpl.Collection(name="sneaky", tenant="globex"))
        assert await _refused(templates.CreateCollection, foreign, "acme-admin") == grpc.StatusCode.PERMISSION_DENIED
        created = await templates.CreateCollection(
            tpl_pb.CreateCollectionRequest(collection=tpl.Collection(name="acme-notes")), metadata=_as("acme-admin")
        )
        assert created.tenant == "acme"

        await plans.Lookup(_lookup("globex-support"), metadata=_as("globex-admin"))
        stats = stats_grpc.StatsServiceStub(channel)
        mine = await stats.GetStats(stats_pb.GetStatsRequest(), metadata=_as("acme-ops"))
        assert mine.lookups == 1 and {t.collection for t in mine.top_templates} == {"acme-support"}
        assert (await _details(stats.GetStats, stats_pb.GetStatsRequest(collection="globex-support"), "acme-ops"))[0] \
            == grpc.StatusCode.NOT_FOUND


async def _details(call, request, token: str) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(request, metadata=_as(token))
    return caught.value.code(), caught.value.details()


async def _execute(plans, handle: str, token: str) -> grpc.StatusCode | None:
    """A dry run of ``handle``; None when it ran, else the status code it ended with."""
    start = plan_pb.ExecuteRequest(
        start=plan_pb.ExecuteStart(plan_handle=handle, options=plan_pb.ExecuteOptions(dry_run=True))
    )
    call = plans.Execute(iter([start]), metadata=_as(token))
    try:
        async for _ in call:
            pass
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return None


async def test_admin_changes_are_logged_with_actor_and_version(start_server):
    """Each admin change logs who made it, what it was and which version it left."""
    server = await start_server(Settings(admin_token="admin-secret", tenant_tokens="t1=acme:admin"))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        templates = tpl_grpc.TemplateServiceStub(channel)
        with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
            await templates.SetTemplateStatus(
                tpl_pb.SetTemplateStatusRequest(
                    collection=C, template_id="cancel_order", status=tpl.TEMPLATE_STATUS_DISABLED
                ),
                metadata=_as("admin-secret"),
            )
            await templates.CreateCollection(
                tpl_pb.CreateCollectionRequest(collection=tpl.Collection(name="acme-x")), metadata=_as("t1")
            )
            await _refused(templates.DeleteCollection, tpl_pb.DeleteCollectionRequest(name=C), "wrong")
    events = {e["event"]: e for e in logs}
    assert events["template_status_set"]["actor"] == "admin"
    assert events["template_status_set"]["version"] == 1
    assert events["template_status_set"]["status"] == "disabled"
    assert events["collection_created"]["actor"] == "acme:admin"
    assert events["rpc_refused"]["code"] == "PERMISSION_DENIED"


def test_tenant_tokens_inline_or_from_a_file(tmp_path: Path):
    """Tenant tokens parse from token=tenant:role pairs or a file of them; mistakes are named."""
    inline = parse_tenant_tokens("a1=acme:admin, g1=globex:agent")
    assert [(t, p.tenant, p.role, p.name) for t, p in inline] == [
        ("a1", "acme", "admin", "acme:admin"), ("g1", "globex", "agent", "globex:agent")
    ]
    listed = tmp_path / "tokens"
    listed.write_text("# tokens\na1=acme:admin\n\ng1=globex:operator  # dashboards\n")
    assert [p.role for _, p in parse_tenant_tokens(str(listed))] == ["admin", "operator"]
    for bad in ("a1", "a1=acme", "a1=acme:root", "=acme:admin"):
        with pytest.raises(ConfigurationError):
            parse_tenant_tokens(bad)


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


async def test_tls_round_trip(start_server, tmp_path):
    """With a certificate set, the client trusting it gets answers; a plaintext client does not."""
    cert, key = _self_signed(tmp_path)
    server = await start_server(Settings(tls_cert=str(cert), tls_key=str(key), agent_token="agent-secret"))
    address = f"127.0.0.1:{server.port}"

    def lookup() -> plan_pb.LookupResponse:
        with connect(address, token="agent-secret", ca_file=str(cert)) as client:
            return client.plans.Lookup(_lookup(), timeout=20, metadata=client.metadata)

    response = await asyncio.to_thread(lookup)
    assert response.outcome == plan_pb.LOOKUP_OUTCOME_HIT
    async with grpc.aio.insecure_channel(address) as plain:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await plan_grpc.PlanServiceStub(plain).Lookup(_lookup(), timeout=5, metadata=_as("agent-secret"))
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
