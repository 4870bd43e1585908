"""One contract for every storage backend: the embedded default and a Qdrant server.

The Qdrant backend runs on qdrant-client's local mode (``:memory:``, or a
folder where a test restarts), which takes the same client calls as a server
reached by URL.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from httpx import Headers
from qdrant_client import QdrantClient
from qdrant_client.http.exceptions import UnexpectedResponse

from plancache.errors import ConflictError, NotFoundError, StoreError
from plancache.store import Counters, Exemplar, Store, exemplar_id, qdrant_server
from plancache.store.embedded import EmbeddedStore
from plancache.store.qdrant_server import QdrantServerStore
from plancache.templates import Collection, Template, TemplateStatus

DIM = 8

Opener = Callable[..., Store]


def unit(axis: int, tilt: float = 0.0, toward: int | None = None) -> np.ndarray:
    """A unit vector along ``axis``, tilted by ``tilt`` toward axis ``toward``."""
    v = np.zeros(DIM, dtype=np.float32)
    v[axis] = 1.0
    if toward is not None:
        v[toward] = tilt
    return v / np.linalg.norm(v)


def tpl(template_id: str, version: int = 1, status: TemplateStatus = TemplateStatus.ACTIVE,
        description: str = "") -> Template:
    return Template(id=template_id, version=version, status=status, description=description)


def ex(collection: str, template_id: str, key: str, vector: np.ndarray,
       kind: str = "positive") -> Exemplar:
    return Exemplar(collection=collection, template_id=template_id, text=f"text of {key}",
                    key=key, vector=vector, kind=kind)


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    """A scratch folder in memory (/dev/shm) when there is one: fsync on a busy disk is slow."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="plancache-test-", dir=shm))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(params=["embedded", "qdrant"])
def backend(request: pytest.FixtureRequest, folder: Path) -> Iterator[Opener]:
    """Opens stores of one backend; ``persistent=True`` gives one that outlives close()."""
    opened: list[Store] = []

    def open_store(*, persistent: bool = False) -> Store:
        store: Store
        if request.param == "embedded":
            store = EmbeddedStore(str(folder / "store"), dimension=DIM)
        elif persistent:
            store = QdrantServerStore(client=QdrantClient(path=str(folder / "qdrant")), dimension=DIM)
        else:
            store = QdrantServerStore(client=QdrantClient(location=":memory:"), dimension=DIM)
        opened.append(store)
        return store

    open_store.kind = request.param  # type: ignore[attr-defined]
    yield open_store
    for store in opened:
        with contextlib.suppress(Exception):
            store.close()


@pytest.fixture
def store(backend: Opener) -> Store:
    return backend()


@pytest.fixture
def qstore() -> Iterator[QdrantServerStore]:
    store = QdrantServerStore(client=QdrantClient(location=":memory:"), dimension=DIM)
    yield store
    store.close()


def seed(store: Store, name: str = "c") -> None:
    """Collection ``name``: template a (axis 0, 1), b (axis 2) active, one negative of a."""
    store.create_collection(Collection(name=name, description=f"{name} things"))
    store.write_templates(
        name,
        [tpl("a"), tpl("b")],
        [
            ex(name, "a", "a1", unit(0)),
            ex(name, "a", "a2", unit(1)),
            ex(name, "b", "b1", unit(2)),
            ex(name, "a", "a-neg", unit(3), kind="negative"),
        ],
    )


def snapshot(store: Store, name: str) -> tuple:
    """Everything stored for one collection, comparable with ==."""
    templates = store.list_templates(name)
    versions = {t.id: store.list_versions(name, t.id) for t in templates}
    exemplars = sorted(
        (e.id, e.template_id, e.kind, e.text, tuple(np.round(e.vector, 5))) for e in store.exemplars(name)
    )
    hits = sorted(h.exemplar_id for axis in range(DIM) for h in store.search(name, unit(axis), 50))
    return templates, versions, exemplars, hits, store.counters(name)


# -- collections -------------------------------------------------------------


def test_create_and_get_collection(store: Store) -> None:
    """A created collection reads back as it was given."""
    collection = Collection(name="c", description="d", tenant="t")
    store.create_collection(collection)
    assert store.get_collection("c") == collection


def test_create_existing_collection_conflicts(store: Store) -> None:
    """Creating a collection that exists raises ConflictError naming it."""
    store.create_collection(Collection(name="c"))
    with pytest.raises(ConflictError, match="'c'"):
        store.create_collection(Collection(name="c", description="other"))
    assert store.get_collection("c").description == ""


def test_list_collections_sorted_by_name(store: Store) -> None:
    """list_collections returns every collection, sorted by name."""
    for name in ("zeta", "alpha", "mid"):
        store.create_collection(Collection(name=name))
    assert [c.name for c in store.list_collections()] == ["alpha", "mid", "zeta"]


def test_save_collection_replaces_body(store: Store) -> None:
    """save_collection replaces a stored collection and refuses an unknown one."""
    store.create_collection(Collection(name="c"))
    changed = Collection(name="c", description="new")
    changed.settings.min_similarity = 0.5
    store.save_collection(changed)
    assert store.get_collection("c") == changed
    with pytest.raises(NotFoundError, match="'nope'"):
        store.save_collection(Collection(name="nope"))


def test_missing_collection_raises_not_found_naming_it(store: Store) -> None:
    """Every method that needs a collection raises NotFoundError naming it."""
    calls = [
        lambda: store.get_collection("ghost"),
        lambda: store.delete_collection("ghost"),
        lambda: store.list_templates("ghost"),
        lambda: store.get_template("ghost", "a"),
        lambda: store.get_template("ghost", "a", 3),
        lambda: store.list_versions("ghost", "a"),
        lambda: store.set_status("ghost", "a", TemplateStatus.DISABLED),
        lambda: store.delete_template("ghost", "a"),
        lambda: store.write_templates("ghost", [tpl("a")], []),
        lambda: store.add_exemplars("ghost", [ex("ghost", "a", "k", unit(0))]),
    ]
    for call in calls:
        with pytest.raises(NotFoundError, match="'ghost'"):
            call()


def test_reads_of_empty_collection_are_empty(store: Store) -> None:
    """A new collection has no templates, exemplars, hits or counters."""
    store.create_collection(Collection(name="c"))
    assert store.list_templates("c") == []
    assert store.exemplars("c") == []
    assert store.search("c", unit(0), 5) == []
    assert store.counters("c") == {}


# -- templates ---------------------------------------------------------------


def test_versions_are_kept_and_current_is_highest(store: Store) -> None:
    """Each write stores a version; get_template without a version gives the highest."""
    store.create_collection(Collection(name="c"))
    store.write_templates("c", [tpl("a", 1, description="one")], [])
    store.write_templates("c", [tpl("a", 3, description="three")], [])
    store.write_templates("c", [tpl("a", 2, description="two")], [])
    assert store.get_template("c", "a").description == "three"
    assert store.get_template("c", "a", 2).description == "two"
    assert [t.version for t in store.list_versions("c", "a")] == [1, 2, 3]
    assert [(t.id, t.version) for t in store.list_templates("c")] == [("a", 3)]


def test_template_body_round_trips(store: Store) -> None:
    """A template's whole body (steps, parameters, dates) reads back unchanged."""
    store.create_collection(Collection(name="c"))
    template = Template.model_validate(
        {
            "id": "book", "version": 1, "collection": "c", "description": "book a room",
            "exemplars": ["book {{city}}"], "tags": ["travel"], "ttl": "7d",
            "parameters": [{"name": "city", "required": True}],
            "steps": [
                {"id": "s1", "instruction": "find {{city}}", "kind": "tool", "tool": "search",
                 "args": {"q": "{{city}}", "n": 3}},
                {"id": "s2", "instruction": "pick", "kind": "llm", "tier": "small",
                 "depends_on": ["s1"]},
            ],
            "created_at": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
            "planning_cost": {"model": "m", "input_tokens": 10, "cost_usd": 0.25},
        }
    )
    store.write_templates("c", [template], [])
    assert store.get_template("c", "book") == template
    assert store.get_template("c", "book", 1) == template


def test_list_templates_gives_current_version_of_each_sorted(store: Store) -> None:
    """list_templates returns one current version per template, sorted by id."""
    store.create_collection(Collection(name="c"))
    store.write_templates("c", [tpl("b", 1), tpl("a", 1)], [])
    store.write_templates("c", [tpl("b", 2, description="newer")], [])
    assert [(t.id, t.version, t.description) for t in store.list_templates("c")] == [
        ("a", 1, ""), ("b", 2, "newer"),
    ]


def test_missing_template_and_version_raise_not_found(store: Store) -> None:
    """An unknown template or version raises NotFoundError naming it and its collection."""
    seed(store)
    with pytest.raises(NotFoundError, match=r"'zz'.*'c'"):
        store.get_template("c", "zz")
    with pytest.raises(NotFoundError, match=r"version 9 .*'a'.*'c'"):
        store.get_template("c", "a", 9)
    for call in (
        lambda: store.list_versions("c", "zz"),
        lambda: store.set_status("c", "zz", TemplateStatus.DISABLED),
        lambda: store.delete_template("c", "zz"),
        lambda: store.add_exemplars("c", [ex("c", "zz", "k", unit(0))]),
    ):
        with pytest.raises(NotFoundError, match="'zz'"):
            call()


def test_stored_version_conflicts(store: Store) -> None:
    """Writing a version that is already stored raises ConflictError and keeps the stored one."""
    store.create_collection(Collection(name="c"))
    store.write_templates("c", [tpl("a", 1, description="first")], [])
    with pytest.raises(ConflictError, match="'a' version 1"):
        store.write_templates("c", [tpl("a", 1, description="second")], [])
    assert store.get_template("c", "a").description == "first"


def test_failed_write_wrong_dimension_stores_nothing(store: Store) -> None:
    """A vector of the wrong size fails the write; templates and exemplars stay as they were."""
    seed(store)
    before = snapshot(store, "c")
    with pytest.raises(StoreError, match="shape"):
        store.write_templates(
            "c",
            [tpl("a", 2, status=TemplateStatus.DISABLED), tpl("new")],
            [ex("c", "new", "n1", unit(5)), ex("c", "a", "bad", np.ones(DIM + 1, dtype=np.float32))],
        )
    assert snapshot(store, "c") == before


def test_failed_write_duplicate_version_stores_nothing(store: Store) -> None:
    """A call with one stored version stores none of its templates or exemplars."""
    seed(store)
    before = snapshot(store, "c")
    with pytest.raises(ConflictError):
        store.write_templates(
            "c",
            [tpl("new", 1), tpl("a", 2, status=TemplateStatus.DISABLED), tpl("b", 1)],
            [ex("c", "new", "n1", unit(5)), ex("c", "a", "a3", unit(6))],
        )
    assert snapshot(store, "c") == before
    with pytest.raises(NotFoundError):
        store.get_template("c", "new")


def test_failed_write_midway_stores_nothing(backend: Opener, monkeypatch: pytest.MonkeyPatch,
                                           request: pytest.FixtureRequest) -> None:
    """A storage failure after some writes leaves templates, exemplars and search as before."""
    store = backend()
    seed(store)
    before = snapshot(store, "c")
    if backend.kind == "embedded":  # type: ignore[attr-defined]
        failing, method = store, "_flush"  # the last step, after every vector write
    else:  # the exemplars' upsert, after the versions' upsert and a's status update
        failing, method = store._client, "upsert"  # type: ignore[attr-defined]
    real = getattr(failing, method)
    calls: list[int] = []

    def boom(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if backend.kind == "qdrant" and len(calls) != 2:  # type: ignore[attr-defined]
            return real(*args, **kwargs)
        raise StoreError("injected failure")

    monkeypatch.setattr(failing, method, boom)
    with pytest.raises(StoreError, match="injected"):
        store.write_templates(
            "c",
            [tpl("a", 2, status=TemplateStatus.DISABLED), tpl("new")],
            [ex("c", "a", "a3", unit(4)), ex("c", "new", "n1", unit(5))],
        )
    monkeypatch.undo()
    assert snapshot(store, "c") == before


# -- status ------------------------------------------------------------------


def test_set_status_changes_current_version_in_place(store: Store) -> None:
    """set_status edits the current version's status without adding a version."""
    store.create_collection(Collection(name="c"))
    store.write_templates("c", [tpl("a", 1)], [])
    store.write_templates("c", [tpl("a", 2)], [])
    changed = store.set_status("c", "a", TemplateStatus.DISABLED)
    assert (changed.version, changed.status) == (2, TemplateStatus.DISABLED)
    assert store.get_template("c", "a") == changed
    assert [(t.version, t.status) for t in store.list_versions("c", "a")] == [
        (1, TemplateStatus.ACTIVE), (2, TemplateStatus.DISABLED),
    ]


def test_disabled_template_not_searched_until_reactivated(store: Store) -> None:
    """Search skips a disabled template's exemplars and finds them again once active."""
    seed(store)
    assert {h.template_id for h in store.search("c", unit(0), 10)} == {"a", "b"}
    store.set_status("c", "a", TemplateStatus.DISABLED)
    assert {h.template_id for h in store.search("c", unit(0), 10)} == {"b"}
    store.set_status("c", "a", TemplateStatus.ACTIVE)
    assert store.search("c", unit(0), 1)[0].key == "a1"


def test_candidate_template_not_searched(store: Store) -> None:
    """A template written as a candidate is not served."""
    store.create_collection(Collection(name="c"))
    store.write_templates("c", [tpl("a", status=TemplateStatus.CANDIDATE)], [ex("c", "a", "a1", unit(0))])
    assert store.search("c", unit(0), 10) == []
    assert len(store.exemplars("c")) == 1


def test_new_version_status_applies_to_earlier_exemplars(store: Store) -> None:
    """Exemplars from earlier versions follow the status of the newly written version."""
    seed(store)
    store.write_templates("c", [tpl("a", 2, status=TemplateStatus.DISABLED)], [ex("c", "a", "a3", unit(4))])
    assert {h.template_id for h in store.search("c", unit(0), 10)} == {"b"}
    store.write_templates("c", [tpl("a", 3)], [])
    assert {h.key for h in store.search("c", unit(0), 10) if h.template_id == "a"} == {"a1", "a2", "a3"}


# -- exemplars and search ----------------------------------------------------


def test_search_orders_hits_and_fills_fields(store: Store) -> None:
    """Search returns the nearest positives first, with ids, texts, keys and cosine scores."""
    seed(store)
    hits = store.search("c", unit(0, 0.2, toward=1), 10)
    assert [h.key for h in hits] == ["a1", "a2", "b1"]
    first = hits[0]
    assert first.exemplar_id == exemplar_id("c", "a", "positive", "a1")
    assert (first.template_id, first.text) == ("a", "text of a1")
    assert first.score == pytest.approx(float(unit(0, 0.2, toward=1) @ unit(0)), abs=1e-4)
    assert hits[0].score > hits[1].score > hits[2].score


def test_search_respects_limit(store: Store) -> None:
    """Search returns at most ``limit`` hits."""
    seed(store)
    assert len(store.search("c", unit(0), 2)) == 2


def test_negative_exemplars_are_not_searched(store: Store) -> None:
    """Search returns positive exemplars only, even next to a negative."""
    seed(store)
    assert "a-neg" not in {h.key for h in store.search("c", unit(3), 10)}


def test_exemplars_by_kind_with_vectors(store: Store) -> None:
    """exemplars() lists a collection's exemplars, optionally of one kind, with their vectors."""
    seed(store)
    everything = {e.key: e for e in store.exemplars("c")}
    assert set(everything) == {"a1", "a2", "b1", "a-neg"}
    assert {e.key for e in store.exemplars("c", "positive")} == {"a1", "a2", "b1"}
    negatives = store.exemplars("c", "negative")
    assert [(e.key, e.kind, e.template_id) for e in negatives] == [("a-neg", "negative", "a")]
    np.testing.assert_allclose(everything["a2"].vector, unit(1), atol=1e-6)
    assert everything["b1"].text == "text of b1" and everything["b1"].source == "curated"
    assert everything["b1"].collection == "c"


def test_add_exemplars_dedups_and_counts_new(store: Store) -> None:
    """add_exemplars stores only exemplars not stored yet and returns how many were new."""
    seed(store)
    again = ex("c", "a", "a1", unit(0))
    fresh = ex("c", "b", "b2", unit(4))
    assert store.add_exemplars("c", [again, fresh, fresh]) == 1
    assert store.add_exemplars("c", [again, fresh]) == 0
    assert store.add_exemplars("c", [ex("c", "a", "a1", unit(0), kind="negative")]) == 1
    assert len(store.exemplars("c")) == 6
    assert store.search("c", unit(4), 1)[0].key == "b2"


def test_added_exemplars_follow_template_status(store: Store) -> None:
    """An exemplar added to a disabled template is not searched until it is re-activated."""
    seed(store)
    store.set_status("c", "b", TemplateStatus.DISABLED)
    store.add_exemplars("c", [ex("c", "b", "b2", unit(4))])
    assert store.search("c", unit(4), 10)[0].key != "b2"
    store.set_status("c", "b", TemplateStatus.ACTIVE)
    assert store.search("c", unit(4), 1)[0].key == "b2"


# -- counters ----------------------------------------------------------------


def test_counters_accumulate(store: Store) -> None:
    """bump_counters adds to each count and keeps the latest hit time."""
    seed(store)
    first = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
    store.bump_counters("c", "a", hits=1, saved_usd=0.25, last_hit_at=first)
    store.bump_counters("c", "a", hits=2, successes=1, failures=3, wrong_plan_reports=4, saved_usd=0.5)
    store.bump_counters("c", "b", failures=1)
    counters = store.counters("c")
    assert counters["a"] == Counters(
        hits=3, successes=1, failures=3, wrong_plan_reports=4, saved_usd=0.75, last_hit_at=first
    )
    assert counters["b"] == Counters(failures=1)
    later = datetime(2025, 6, 1, tzinfo=UTC)
    store.bump_counters("c", "a", hits=1, last_hit_at=later)
    assert store.counters("c")["a"].last_hit_at == later


# -- deletion and namespaces -------------------------------------------------


def test_delete_template_removes_versions_exemplars_counters(store: Store) -> None:
    """delete_template returns its version count and removes versions, exemplars and counters."""
    seed(store)
    store.write_templates("c", [tpl("a", 2)], [])
    store.bump_counters("c", "a", hits=1)
    store.bump_counters("c", "b", hits=1)
    assert store.delete_template("c", "a") == 2
    with pytest.raises(NotFoundError):
        store.get_template("c", "a")
    with pytest.raises(NotFoundError):
        store.get_template("c", "a", 1)
    assert [t.id for t in store.list_templates("c")] == ["b"]
    assert {e.template_id for e in store.exemplars("c")} == {"b"}
    assert {h.template_id for h in store.search("c", unit(0), 10)} == {"b"}
    assert set(store.counters("c")) == {"b"}
    store.write_templates("c", [tpl("a", 1)], [])  # the id can be used again
    assert store.exemplars("c", "negative") == []


def test_delete_collection_removes_only_that_collection(store: Store) -> None:
    """delete_collection returns its template count and leaves other collections whole."""
    seed(store, "c")
    seed(store, "d")
    store.bump_counters("c", "a", hits=1)
    store.bump_counters("d", "a", hits=2)
    kept = snapshot(store, "d")
    assert store.delete_collection("c") == 2
    with pytest.raises(NotFoundError, match="'c'"):
        store.get_collection("c")
    assert [c.name for c in store.list_collections()] == ["d"]
    assert store.exemplars("c") == [] and store.search("c", unit(0), 10) == []
    assert store.counters("c") == {}
    assert snapshot(store, "d") == kept
    store.create_collection(Collection(name="c"))  # the name is free again
    assert store.list_templates("c") == []


def test_collections_do_not_leak(store: Store) -> None:
    """Templates, exemplars, status and counters of one collection never show in another."""
    seed(store, "c")
    store.create_collection(Collection(name="d"))
    store.write_templates("d", [tpl("a", 1, description="d's a")], [ex("d", "a", "a1", unit(0))])
    store.bump_counters("c", "a", hits=5)
    assert store.get_template("d", "a").description == "d's a"
    assert [t.id for t in store.list_templates("d")] == ["a"]
    assert [e.key for e in store.exemplars("d")] == ["a1"]
    assert {h.exemplar_id for h in store.search("d", unit(0), 10)} == {
        exemplar_id("d", "a", "positive", "a1")
    }
    assert store.counters("d") == {}
    store.set_status("c", "a", TemplateStatus.DISABLED)
    assert [h.template_id for h in store.search("d", unit(0), 10)] == ["a"]
    store.write_templates("d", [tpl("a", 2)], [])  # a version of d's a, not c's
    assert [t.version for t in store.list_versions("c", "a")] == [1]
    assert store.delete_template("d", "a") == 2
    assert store.get_template("c", "a").status is TemplateStatus.DISABLED
    assert len(store.exemplars("c")) == 4


# -- persistence -------------------------------------------------------------


def test_restart_keeps_everything(backend: Opener) -> None:
    """Closing and reopening the store keeps collections, versions, status, exemplars and counters."""
    store = backend(persistent=True)
    seed(store, "c")
    seed(store, "d")
    store.write_templates("c", [tpl("a", 2, description="v2")], [ex("c", "a", "a3", unit(4))])
    store.set_status("c", "b", TemplateStatus.DISABLED)
    store.add_exemplars("d", [ex("d", "b", "b2", unit(5), kind="negative")])
    store.bump_counters("c", "a", hits=2, saved_usd=1.5, last_hit_at=datetime(2025, 1, 1, tzinfo=UTC))
    collections = store.list_collections()
    before = {name: snapshot(store, name) for name in ("c", "d")}
    store.close()

    reopened = backend(persistent=True)
    assert reopened.list_collections() == collections
    assert {name: snapshot(reopened, name) for name in ("c", "d")} == before
    assert reopened.get_template("c", "a", 1).description == ""
    assert {h.template_id for h in reopened.search("c", unit(2), 10)} == {"a"}


def test_second_embedded_store_on_same_folder_fails(folder: Path) -> None:
    """The embedded store has one owner: opening its folder again raises StoreError."""
    first = EmbeddedStore(str(folder), dimension=DIM)
    try:
        with pytest.raises(StoreError, match="another process"):
            EmbeddedStore(str(folder), dimension=DIM)
    finally:
        first.close()
    EmbeddedStore(str(folder), dimension=DIM).close()  # free again once closed


# -- the Qdrant server store only ---------------------------------------------


def test_qdrant_replicas_share_state() -> None:
    """Two stores on one Qdrant see each other's writes, and a version races into ConflictError."""
    client = QdrantClient(location=":memory:")
    one = QdrantServerStore(client=client, dimension=DIM)
    two = QdrantServerStore(client=client, dimension=DIM)
    seed(one)
    assert two.get_collection("c").description == "c things"
    assert {h.key for h in two.search("c", unit(0), 10)} == {"a1", "a2", "b1"}
    two.bump_counters("c", "a", hits=1)
    one.bump_counters("c", "a", hits=1)
    assert one.counters("c")["a"].hits == 2
    with pytest.raises(ConflictError):
        two.create_collection(Collection(name="c"))
    with pytest.raises(ConflictError):
        two.write_templates("c", [tpl("a", 1)], [])
    client.close()


def test_qdrant_version_race_detected_after_check(qstore: QdrantServerStore,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A version another replica stored after our check is kept, and our write is undone."""
    seed(qstore)
    before = snapshot(qstore, "c")
    monkeypatch.setattr(qstore, "_existing_ids", lambda name, ids: set())  # the check raced
    with pytest.raises(ConflictError, match="'a' version 1"):
        qstore.write_templates(
            "c", [tpl("new"), tpl("a", 1, description="mine")], [ex("c", "new", "n1", unit(5))]
        )
    monkeypatch.undo()
    assert snapshot(qstore, "c") == before
    assert qstore.get_template("c", "a").description == ""


def test_qdrant_unreachable_url_raises_store_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A URL nobody listens on gives a StoreError that names it, chained to the cause."""
    # No version check: its background thread would warn during a later test.
    monkeypatch.setattr(qdrant_server, "QdrantClient",
                        functools.partial(QdrantClient, check_compatibility=False))
    with pytest.raises(StoreError, match=r"cannot reach Qdrant at http://127\.0\.0\.1:9") as info:
        QdrantServerStore("http://127.0.0.1:9", dimension=DIM)
    assert info.value.__cause__ is not None


def test_qdrant_http_errors_become_store_errors(qstore: QdrantServerStore,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A rejected request becomes a chained StoreError; 403 points at the API key."""
    def forbidden(*args: object, **kwargs: object) -> None:
        raise UnexpectedResponse(403, "Forbidden", b'{"status":"forbidden"}', Headers())

    monkeypatch.setattr(qstore._client, "query_points", forbidden)
    with pytest.raises(StoreError, match="API key") as info:
        qstore.search("c", unit(0), 3)
    assert isinstance(info.value.__cause__, UnexpectedResponse)

    def broken(*args: object, **kwargs: object) -> None:
        raise UnexpectedResponse(500, "Internal Server Error", b"disk full", Headers())

    monkeypatch.setattr(qstore._client, "scroll", broken)
    with pytest.raises(StoreError, match=r"HTTP 500.*disk full"):
        qstore.list_collections()


def test_qdrant_dimension_mismatch_raises_store_error() -> None:
    """Opening a Qdrant whose exemplars hold another vector size fails with StoreError."""
    client = QdrantClient(location=":memory:")
    QdrantServerStore(client=client, dimension=DIM)
    with pytest.raises(StoreError, match=f"size {DIM}.*configured for {DIM * 2}"):
        QdrantServerStore(client=client, dimension=DIM * 2)
    QdrantServerStore(client=client, dimension=DIM, prefix="other")  # a prefix of its own is fine
    client.close()
