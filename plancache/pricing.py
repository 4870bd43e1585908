"""What model calls cost, from their token usage and a price table.

Prices are US dollars per million tokens. Cache writes cost 1.25x the input
price, cache reads 0.1x, and the Message Batches API half of everything, as
Anthropic publishes them. The table is configuration: ``PLANCACHE_PRICES``
names a JSON file ``{"model-id": {"input": 1.0, "output": 5.0}, ...}`` whose
entries replace the defaults below.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from plancache.errors import ConfigurationError

__all__ = ["ModelPrice", "PriceTable", "TokenUsage"]

CACHE_WRITE_FACTOR = 1.25
CACHE_READ_FACTOR = 0.1
BATCH_FACTOR = 0.5

# Published list prices (USD per million tokens) of the models the default
# tiers name; a model missing here is priced at the fallback.
_DEFAULT_PRICES = {
    "claude-haiku-4-5": (1.0, 5.0),
    "claude-sonnet-4-5": (3.0, 15.0),
    "claude-opus-4-5": (5.0, 25.0),
    "claude-3-5-haiku-latest": (0.8, 4.0),
}
_FALLBACK = "claude-sonnet-4-5"


@dataclass(frozen=True)
class ModelPrice:
    input: float
    output: float


@dataclass(frozen=True)
class TokenUsage:
    """Tokens of one or more calls, as the Messages API reports them."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
        )

    @property
    def total_input(self) -> int:
        return self.input_tokens + self.cache_write_tokens + self.cache_read_tokens


class PriceTable:
    """Prices per model; ``cost`` turns a usage into dollars."""

    def __init__(self, prices: dict[str, ModelPrice] | None = None) -> None:
        self._prices = {name: ModelPrice(*p) for name, p in _DEFAULT_PRICES.items()}
        self._prices.update(prices or {})

    @classmethod
    def from_file(cls, path: str) -> PriceTable:
        try:
            with open(path, encoding="utf-8") as handle:
                raw = json.load(handle)
            prices = {
                name: ModelPrice(float(p["input"]), float(p["output"])) for name, p in raw.items()
            }
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigurationError(
                f"price table {path}: {exc}; expected {{\"model\": {{\"input\": 1.0, \"output\": 5.0}}}}"
            ) from exc
        return cls(prices)

    def price(self, model: str) -> ModelPrice:
        if model in self._prices:
            return self._prices[model]
        # Dated ids ("claude-haiku-4-5-20251001") share their family's price.
        for name in sorted(self._prices, key=len, reverse=True):
            if model.startswith(name):
                return self._prices[name]
        return self._prices[_FALLBACK]

    def cost(self, model: str, usage: TokenUsage, *, batch: bool = False) -> float:
        price = self.price(model)
        dollars = (
            usage.input_tokens * price.input
            + usage.cache_write_tokens * price.input * CACHE_WRITE_FACTOR
            + usage.cache_read_tokens * price.input * CACHE_READ_FACTOR
            + usage.output_tokens * price.output
        ) / 1_000_000
        return dollars * (BATCH_FACTOR if batch else 1.0)
