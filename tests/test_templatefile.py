"""Collection files: read, reject, write back."""

from pathlib import Path

import pytest

from plancache.errors import TemplateFileError
from plancache.templatefile import dump_jsonl, dump_yaml, load, load_jsonl, load_yaml

DEMO = Path(__file__).resolve().parent.parent / "collections" / "customer_support.yaml"

GOOD = """
collection: shop
settings:
  default_ttl: 7d
  tools:
    - {name: order_lookup, parameters: {order_id: string}}
templates:
  - id: cancel_order
    exemplars: ["cancel order {{order_id}}"]
    parameters: [{name: order_id, type: string, required: true}]
    steps:
      - {id: find, instruction: "Find {{order_id}}", kind: tool, tool: order_lookup,
         args: {order_id: "{{order_id}}"}}
"""


def test_the_demo_collection_is_valid():
    """The shipped customer-support collection covers the 27 Bitext workflows."""
    parsed = load(DEMO.read_text(), str(DEMO))
    assert parsed.collection.name == "customer-support"
    assert len(parsed.templates) == 27
    assert {"cancel_order", "get_refund", "track_order"} <= {t.id for t in parsed.templates}


def test_every_problem_names_file_template_and_field():
    """A broken file is rejected whole, with one line per problem."""
    broken = GOOD.replace("kind: tool, tool: order_lookup", "kind: tool, tool: refund_create")
    broken = broken.replace("- id: cancel_order", "- id: cancel_order\n    colour: red")
    broken += """
  - id: cancel_order
    steps: [{id: a, instruction: x, kind: llm, tier: giant, depends_on: [a]}]
"""
    with pytest.raises(TemplateFileError) as caught:
        load_yaml(broken, "shop.yaml")
    text = "\n".join(caught.value.problems)
    assert "shop.yaml: template 'cancel_order': colour: unknown field" in text
    assert "duplicate template id" in text
    assert "'giant' is not a tier" in text
    assert all(p.startswith("shop.yaml") for p in caught.value.problems)


def test_yaml_errors_give_the_line():
    """Unparseable YAML is reported with its line and column."""
    with pytest.raises(TemplateFileError, match=r"bad.yaml:\d+:\d+: not valid YAML"):
        load_yaml("templates: [\n  {id: x,\n", "bad.yaml")


def test_missing_fields_are_named():
    """A template without steps' required fields says which is missing."""
    with pytest.raises(TemplateFileError, match=r"steps\[0\]\.kind: missing field"):
        load_yaml("collection: c\ntemplates:\n  - id: t\n    steps: [{id: a, instruction: x}]\n", "c.yaml")


def test_yaml_and_jsonl_round_trip_without_loss():
    """What dump_yaml and dump_jsonl write, load reads back identically."""
    parsed = load_yaml(DEMO.read_text(), "demo.yaml")
    again = load_yaml(dump_yaml(parsed.collection, parsed.templates), "again.yaml")
    assert again.collection == parsed.collection
    assert again.templates == parsed.templates
    lines = load_jsonl(dump_jsonl(parsed.collection, parsed.templates), "demo.jsonl")
    assert lines.templates == parsed.templates


def test_jsonl_takes_the_newest_version_of_each_template():
    """An all-versions export reads back as its current versions."""
    parsed = load_yaml(GOOD, "shop.yaml")
    first = parsed.templates[0].model_copy(update={"version": 1, "description": "old"})
    second = parsed.templates[0].model_copy(update={"version": 2, "description": "new"})
    back = load_jsonl(dump_jsonl(parsed.collection, [first, second]), "x.jsonl")
    assert [t.description for t in back.templates] == ["new"]
