"""Building and running the gRPC server.

``build_server`` takes an address and returns the server and the port it
bound, so tests start it on port 0. Besides plancache's own services it
serves the standard health service and server reflection, so grpcurl works
with no proto files at hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from executor import ExecuteHandler
from plancache.auth import AuthInterceptor, AuthPolicy
from plancache.cache import PlanCache
from plancache.config import Settings
from plancache.errors import ConfigurationError
from plancache.logs import get_logger
from plancache.metrics import Metrics, MetricsEndpoint
from plancache.services.plan import PlanServicer
from plancache.services.stats import StatsServicer
from plancache.services.templates import TemplateServicer
from plancache.sweeper import start_sweeper
from plancache.v1 import (
    plan_service_pb2,
    plan_service_pb2_grpc,
    stats_service_pb2,
    stats_service_pb2_grpc,
    template_service_pb2,
    template_service_pb2_grpc,
)

__all__ = ["Server", "build_cache", "build_server", "serve"]

log = get_logger("plancache.server")

SERVICE_NAMES: Sequence[str] = (
    plan_service_pb2.DESCRIPTOR.services_by_name["PlanService"].full_name,
    template_service_pb2.DESCRIPTOR.services_by_name["TemplateService"].full_name,
    stats_service_pb2.DESCRIPTOR.services_by_name["StatsService"].full_name,
)


@dataclass
class Server:
    """A built server: the gRPC server, its bound port, and what it serves."""

    grpc_server: grpc.aio.Server
    port: int
    cache: PlanCache
    health: health.aio.HealthServicer
    # The TTL sweeper task, and the Prometheus endpoint (None when off).
    sweeper: asyncio.Task[None] | None = None
    metrics: MetricsEndpoint | None = None

    async def stop(self, grace: float = 2.0) -> None:
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.grpc_server.stop(grace)
        if self.sweeper is not None:
            self.sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.sweeper
        if self.metrics is not None:
            self.cache.stats.remove_sink(self.metrics.metrics)
            await asyncio.to_thread(self.metrics.close)


def build_cache(settings: Settings) -> PlanCache:
    """The PlanCache the settings describe: store, embedder, planner, prices."""
    from plancache.embedding import SentenceTransformerEmbedder
    from plancache.pricing import PriceTable
    from plancache.stats import Stats
    from plancache.store import open_store

    embedder = SentenceTransformerEmbedder(settings.embedding_model)
    store = open_store(settings.store, dimension=embedder.dimension, api_key=settings.qdrant_api_key)
    prices = PriceTable.from_file(settings.prices_file) if settings.prices_file else PriceTable()
    # One Stats for the cache and the planner: every planner call is counted.
    stats = Stats()
    planner = None
    if settings.anthropic_api_key:
        from planner import AnthropicPlanner

        planner = AnthropicPlanner.from_settings(settings, prices, stats=stats)
    return PlanCache(
        store,
        embedder,
        planner=planner,
        prices=prices,
        stats=stats,
        planner_model=settings.planner_model,
        top_k=settings.top_k,
        tiers=tuple(settings.tiers),
    )


def _credentials(settings: Settings) -> grpc.ServerCredentials | None:
    if not settings.tls_cert:
        return None
    try:
        with open(settings.tls_cert, "rb") as cert, open(settings.tls_key or "", "rb") as key:
            return grpc.ssl_server_credentials([(key.read(), cert.read())])
    except OSError as exc:
        raise ConfigurationError(f"cannot read TLS certificate or key: {exc}") from exc


async def build_server(cache: PlanCache, address: str, settings: Settings | None = None) -> Server:
    """Register every service on a new server bound to ``address``; not yet started."""
    settings = settings or Settings()
    server = grpc.aio.server(
        interceptors=[AuthInterceptor(AuthPolicy.from_settings(settings), cache)],
        options=[
            ("grpc.max_receive_message_length", 32 * 1024 * 1024),
            ("grpc.max_send_message_length", 32 * 1024 * 1024),
            # gRPC shares a port between processes by default on Linux; a
            # second server on a busy port must fail, not take half the calls.
            ("grpc.so_reuseport", 0),
        ]
    )
    execute = ExecuteHandler.from_settings(cache, settings)
    plan_service_pb2_grpc.add_PlanServiceServicer_to_server(
        PlanServicer(cache, lookup_deadline_s=settings.lookup_deadline_s, execute=execute), server
    )
    template_service_pb2_grpc.add_TemplateServiceServicer_to_server(TemplateServicer(cache), server)
    stats_service_pb2_grpc.add_StatsServiceServicer_to_server(StatsServicer(cache), server)

    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
    )

    credentials = _credentials(settings)
    try:
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError as exc:
        raise ConfigurationError(
            f"cannot listen on {address!r}: the port is in use or the address is not valid "
            "(set PLANCACHE_LISTEN)"
        ) from exc
    if port == 0:
        raise ConfigurationError(f"cannot listen on {address!r} (in use, or not an address)")
    endpoint = None
    if settings.metrics_listen:
        endpoint = MetricsEndpoint(Metrics(), settings.metrics_listen)
        cache.stats.add_sink(endpoint.metrics)
    sweeper = start_sweeper(cache, settings.sweep_interval_s)
    return Server(server, port, cache, health_servicer, sweeper=sweeper, metrics=endpoint)


def seed(cache: PlanCache, folder: str) -> list[str]:
    """Import every collection file of ``folder`` whose collection is not stored yet."""
    from plancache.errors import NotFoundError
    from plancache.templatefile import load

    imported: list[str] = []
    if not folder or not os.path.isdir(folder):
        return imported
    for name in sorted(os.listdir(folder)):
        if not name.endswith((".yaml", ".yml", ".jsonl")):
            continue
        path = os.path.join(folder, name)
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        parsed = load(text, path)
        try:
            cache.store.get_collection(parsed.collection.name)
        except NotFoundError:
            cache.import_file(text, source=path)
            imported.append(parsed.collection.name)
    return imported


async def serve(settings: Settings) -> None:
    """Run a server until SIGINT or SIGTERM."""
    cache = await asyncio.to_thread(build_cache, settings)
    seeded = await asyncio.to_thread(seed, cache, settings.seed_collections)
    server = await build_server(cache, settings.listen, settings)
    await server.grpc_server.start()
    log.info(
        "server_started", listen=settings.listen, port=server.port, store=settings.store,
        seeded=seeded, planner=cache.planner is not None, tls=bool(settings.tls_cert),
        metrics_port=server.metrics.port if server.metrics else None,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("server_stopping")
    await server.stop()
    cache.close()
    log.info("server_stopped")
