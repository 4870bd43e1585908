"""Where collections, templates and exemplars are kept.

One interface, ``Store``, two backends:

- ``EmbeddedStore`` (the default): template bodies in SQLite and exemplar
  vectors in Qdrant's own engine running in-process (qdrant-edge), both in
  one folder on local disk that a single process owns.
- ``QdrantServerStore``: everything in a Qdrant server or cluster reached by
  URL through qdrant-client, for deployments that outgrow one machine.

``open_store`` picks one from the settings.
"""

from plancache.store._base import Counters, Exemplar, ExemplarHit, Store, exemplar_id

__all__ = ["Counters", "Exemplar", "ExemplarHit", "Store", "exemplar_id", "open_store"]


def open_store(location: str, *, dimension: int, api_key: str | None = None) -> Store:
    """``location``: a folder for the embedded store, or an http(s):// URL of a Qdrant server."""
    if location.startswith(("http://", "https://")):
        from plancache.store.qdrant_server import QdrantServerStore

        return QdrantServerStore(url=location, dimension=dimension, api_key=api_key)
    from plancache.store.embedded import EmbeddedStore

    return EmbeddedStore(location, dimension=dimension)
