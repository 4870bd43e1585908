"""The retrieval key: what plancache embeds for a request or an exemplar.

A request is its intent text plus typed parameter values. The key masks every
value where it stands in the text with its parameter's name in braces, and ends
with the sorted parameter names, so "cancel order 123" and "cancel order 456"
share one key and values never decide a match. Exemplars written with
``{{name}}`` placeholders get the same treatment, so both sides meet in one form.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["PLACEHOLDER", "exemplar_key", "exemplar_text", "render_value", "retrieval_key"]

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_SPACES = re.compile(r"\s+")


def render_value(value: object) -> str:
    """A parameter value as it would appear in text (``3.0`` reads ``3``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _finish(text: str, names: set[str]) -> str:
    text = _SPACES.sub(" ", text).strip()
    if not names:
        return text
    return f"{text} ({', '.join(sorted(names))})"


def retrieval_key(intent: str, parameters: Mapping[str, object]) -> str:
    """Mask each parameter value in ``intent`` by ``{name}`` and append the names.

    Longer values are masked first so a value that contains another (an order
    id holding a shorter number) is not split. Matching ignores case and takes
    whole tokens only.
    """
    text = intent
    ordered = sorted(
        ((name, render_value(v)) for name, v in parameters.items()),
        key=lambda item: len(item[1]),
        reverse=True,
    )
    for name, value in ordered:
        if value.strip():
            # whole tokens only: order_id=1 must not turn "purchase 12" into "{order_id}2"
            pattern = rf"(?<![A-Za-z0-9]){re.escape(value)}(?![A-Za-z0-9])"
            text = re.sub(pattern, "{" + name + "}", text, flags=re.IGNORECASE)
    return _finish(text, set(parameters))


def exemplar_key(exemplar: str) -> str:
    """The key of an exemplar phrasing written with ``{{name}}`` placeholders."""
    names = set(PLACEHOLDER.findall(exemplar))
    return _finish(PLACEHOLDER.sub(lambda m: "{" + m.group(1) + "}", exemplar), names)


def exemplar_text(intent: str, parameters: Mapping[str, object]) -> str:
    """A request as an exemplar phrasing: each value replaced by ``{{name}}``.

    The cache and the planner both make a template's first exemplar this way.
    """
    text = retrieval_key(intent, parameters)
    if parameters:
        text = text.removesuffix(f" ({', '.join(sorted(parameters))})")
    for name in parameters:
        text = text.replace("{" + name + "}", "{{" + name + "}}")
    return text
