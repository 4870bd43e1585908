"""Shared fixtures: one embedder per test session, servers on loopback port 0."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "collections" / "customer_support.yaml"
DATA = Path(os.environ.get("PLANCACHE_DATA", ROOT.parent / "shared" / "data"))
BITEXT = DATA / "bitext-customer-support" / "customer_support_sample.csv"
BANKING = DATA / "banking77"


@pytest.fixture(scope="session")
def embedder():
    """The real all-MiniLM-L6-v2, loaded once (about 5 s)."""
    from plancache.embedding import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


@pytest.fixture
def store(tmp_path: Path) -> Iterator:
    from plancache.store.embedded import EmbeddedStore

    opened = EmbeddedStore(str(tmp_path / "store"), dimension=384)
    yield opened
    with contextlib.suppress(Exception):  # already closed by the test
        opened.close()


@pytest.fixture
def cache(store, embedder):
    from plancache.cache import PlanCache

    return PlanCache(store, embedder)


@pytest.fixture(scope="session")
def demo_store_folder(tmp_path_factory, embedder) -> Path:
    """A store folder holding the demo collection, imported once per session."""
    from plancache.cache import PlanCache
    from plancache.store.embedded import EmbeddedStore

    folder = tmp_path_factory.mktemp("demo") / "store"
    seeded = EmbeddedStore(str(folder), dimension=384)
    PlanCache(seeded, embedder).import_file(DEMO.read_text(), source=str(DEMO))
    seeded.close()
    return folder


@pytest.fixture
def demo_cache(tmp_path: Path, demo_store_folder: Path, embedder) -> Iterator:
    """A cache over a private copy of the demo store: tests may change it freely."""
    from plancache.cache import PlanCache
    from plancache.store.embedded import EmbeddedStore

    folder = tmp_path / "demo-store"
    shutil.copytree(demo_store_folder, folder)
    opened = EmbeddedStore(str(folder), dimension=384)
    yield PlanCache(opened, embedder)
    opened.close()


@pytest.fixture
async def server(demo_cache) -> AsyncIterator:
    """A started gRPC server over the demo cache, on 127.0.0.1 and a free port."""
    from plancache.server import build_server

    built = await build_server(demo_cache, "127.0.0.1:0")
    await built.grpc_server.start()
    yield built
    await built.stop(0)


@pytest.fixture
async def channel(server) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as opened:
        yield opened


@pytest.fixture
async def start_server(demo_cache):
    """Start servers over the demo cache with given Settings; all stopped at the end."""
    from plancache.config import Settings
    from plancache.server import build_server

    started = []

    async def start(settings: Settings | None = None):
        built = await build_server(demo_cache, "127.0.0.1:0", settings or Settings())
        await built.grpc_server.start()
        started.append(built)
        return built

    yield start
    for built in started:
        await built.stop(0)
