"""Template rules and binding values."""

from datetime import timedelta

import pytest

from plancache.templates import (
    ParameterSpec,
    StepSpec,
    Template,
    bind,
    check_template,
    dependency_order,
    format_duration,
    parse_duration,
    utcnow,
)


def _template(**changes):
    base = dict(
        id="cancel_order",
        exemplars=["cancel order {{order_id}}"],
        parameters=[
            ParameterSpec(name="order_id", type="string", required=True),
            ParameterSpec(name="count", type="integer"),
        ],
        steps=[
            StepSpec(id="find", instruction="Find order {{order_id}}", kind="tool",
                     tool="order_lookup", args={"order_id": "{{order_id}}", "n": "{{count}}"}),
            StepSpec(id="decide", instruction="Can {{steps.find.output}} be cancelled?",
                     kind="llm", tier="small", depends_on=["find"]),
        ],
    )
    base.update(changes)
    return Template(**base)


def test_a_good_template_breaks_no_rule():
    """The reference template passes every check."""
    assert check_template(_template(), tools={"order_lookup"}) == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"id": "bad id!"}, "id:"),
        ({"exemplars": ["cancel {{nope}}"]}, "unknown parameter {{nope}}"),
        ({"steps": []}, "at least one step"),
    ],
)
def test_broken_templates_name_the_field(changes, expected):
    """Each broken rule is reported with the field it concerns."""
    problems = check_template(_template(**changes), tools={"order_lookup"})
    assert any(expected in p for p in problems), problems


def test_step_rules():
    """Unknown tier, unknown tool, unknown dependency, cycles and non-ancestor references are caught."""
    steps = [
        StepSpec(id="a", instruction="x {{steps.c.output}}", kind="llm", tier="huge", depends_on=["b"]),
        StepSpec(id="b", instruction="y", kind="tool", tool="missing_tool", depends_on=["a"]),
        StepSpec(id="c", instruction="z", kind="tool", tool="order_lookup", depends_on=["ghost"]),
        StepSpec(id="c", instruction="dup", kind="tool", tool="order_lookup"),
    ]
    problems = "\n".join(check_template(_template(steps=steps), tools={"order_lookup"}))
    assert "'huge' is not a tier" in problems
    assert "'missing_tool' is not in the collection's tool catalogue" in problems
    assert "unknown step 'ghost'" in problems
    assert "dependency cycle" in problems
    assert "{{steps.c.output}} is not an ancestor" in problems
    assert "duplicate step id 'c'" in problems


def test_bind_fills_values_and_keeps_types():
    """A whole-placeholder argument takes the typed value; text gets it spelled out."""
    plan, problems = bind(_template(), {"order_id": 123.0, "count": "4"})
    assert problems == []
    assert plan is not None
    assert plan.steps[0].instruction == "Find order 123"
    assert plan.steps[0].args == {"order_id": "123", "n": 4}
    assert plan.steps[1].instruction == "Can {{steps.find.output}} be cancelled?"
    assert plan.unbound_parameters == []


def test_bind_refuses_missing_required_and_wrong_types():
    """A required parameter without a value, or an integer that is not one, is not served."""
    plan, problems = bind(_template(), {"count": 2})
    assert plan is None and "required parameter 'order_id' has no value" in problems[0]
    plan, problems = bind(_template(), {"order_id": "1", "count": "many"})
    assert plan is None and "expected an integer" in problems[0]


@pytest.mark.parametrize("text", ["inf", "-Infinity", "nan", "1e999"])
def test_a_number_parameter_must_be_finite(text):
    """Text that Python reads as an infinite or undefined float is not an amount."""
    template = _template().model_copy(
        update={"parameters": [ParameterSpec(name="order_id", type="number", required=True)]}
    )
    plan, problems = bind(template, {"order_id": text})
    assert plan is None and "expected a finite number" in problems[0]
    plan, problems = bind(template, {"order_id": "$1,250.50"})
    assert plan is not None and plan.parameters["order_id"] == 1250.5


def test_a_phrasing_is_no_longer_than_a_request():
    """A phrasing longer than Lookup accepts as a request is a rule broken."""
    long = _template().model_copy(update={"exemplars": ["x" * 4001]})
    assert "at most 4000" in "\n".join(check_template(long))


def test_optional_parameters_stay_unbound():
    """An optional parameter without a value keeps its placeholder and is listed."""
    plan, _ = bind(_template(), {"order_id": "7"})
    assert plan is not None
    assert plan.unbound_parameters == ["count"]
    assert plan.steps[0].args["n"] == "{{count}}"


def test_durations_round_trip():
    """30d, 36h, 90m and plain seconds parse, and format back to the shortest spelling."""
    assert parse_duration("30d") == timedelta(days=30)
    assert parse_duration(90) == timedelta(seconds=90)
    assert format_duration(parse_duration("36h")) == "36h"
    assert format_duration(timedelta(minutes=90)) == "90m"
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("soon")


def test_ttl_counts_from_the_last_update():
    """Expiry is updated_at + ttl; a hit does not extend it."""
    now = utcnow()
    template = _template(ttl="1h", created_at=now - timedelta(days=3), updated_at=now - timedelta(minutes=30))
    assert not template.is_expired(timedelta(days=30), now)
    assert template.is_expired(timedelta(days=30), now + timedelta(minutes=31))


def test_dependency_order_puts_parents_first():
    """Steps come after their dependencies."""
    order = dependency_order(_template().steps)
    assert order.index("find") < order.index("decide")
