"""Settings, read from ``PLANCACHE_*`` environment variables.

Every setting has a default that runs on a laptop with nothing else
installed: the embedded store under ./var/plancache, the bundled embedding
model, no tokens, no TLS, and the planner only when ANTHROPIC_API_KEY is set.
The README's configuration table lists them all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from typing import Any

from plancache.errors import ConfigurationError

__all__ = ["Settings"]

_DEFAULT_TIERS = {
    "small": "claude-haiku-4-5",
    "medium": "claude-sonnet-4-5",
    "large": "claude-opus-4-5",
}


def _tiers(text: str) -> dict[str, str]:
    tiers: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        name, sep, model = item.partition("=")
        if not sep or not name.strip() or not model.strip():
            raise ConfigurationError(
                f"PLANCACHE_TIERS: {item!r} is not name=model (e.g. small=claude-haiku-4-5)"
            )
        tiers[name.strip()] = model.strip()
    return tiers


@dataclass(frozen=True)
class Settings:
    """What a plancache server runs with."""

    listen: str = "127.0.0.1:50051"
    store: str = "var/plancache"
    qdrant_api_key: str | None = None
    embedding_model: str | None = None
    seed_collections: str = "collections"
    log_level: str = "info"
    log_format: str = "json"
    top_k: int = 32
    lookup_deadline_s: float = 20.0

    anthropic_api_key: str | None = None
    anthropic_base_url: str | None = None
    planner_model: str = "claude-haiku-4-5"
    planner_max_tokens: int = 2048
    planner_timeout_s: float = 15.0
    planner_max_retries: int = 3
    tiers: dict[str, str] = field(default_factory=lambda: dict(_DEFAULT_TIERS))
    prices_file: str | None = None
    step_timeout_s: float = 60.0
    execute_deadline_s: float = 300.0

    admin_token: str | None = None
    agent_token: str | None = None
    tenant_tokens: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    metrics_listen: str | None = None
    sweep_interval_s: float = 60.0

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = "PLANCACHE_" + f.name.upper()
            if f.name == "anthropic_api_key":
                raw = env.get(name) or env.get("ANTHROPIC_API_KEY")
            elif f.name == "anthropic_base_url":
                raw = env.get(name) or env.get("ANTHROPIC_BASE_URL")
            else:
                raw = env.get(name)
            if raw is None or raw == "":
                continue
            values[f.name] = _convert(f.name, f.type, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.check()
        return settings

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def check(self) -> None:
        if self.top_k < 1 or self.top_k > 1000:
            raise ConfigurationError(f"PLANCACHE_TOP_K must be 1..1000, got {self.top_k}")
        if self.log_format not in ("json", "console"):
            raise ConfigurationError("PLANCACHE_LOG_FORMAT must be json or console")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigurationError("set both PLANCACHE_TLS_CERT and PLANCACHE_TLS_KEY, or neither")
        if self.sweep_interval_s < 0:
            raise ConfigurationError("PLANCACHE_SWEEP_INTERVAL_S must be 0 (off) or more")
        if "small" not in self.tiers:
            raise ConfigurationError("PLANCACHE_TIERS must name a 'small' tier")


def _convert(name: str, kind: object, raw: str) -> Any:
    try:
        if name == "tiers":
            return _tiers(raw)
        if kind in ("int", int):
            return int(raw)
        if kind in ("float", float):
            return float(raw)
    except ValueError as exc:
        raise ConfigurationError(f"PLANCACHE_{name.upper()}: {raw!r} is not a number") from exc
    return raw
