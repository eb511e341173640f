"""The built-in tool suite: determinism, sizes, schema validity, held-out tools, phrasings and values."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolexpander.data.schema import query_text, record_errors
from toolexpander.tasks import suite as suite_module
from toolexpander.tasks.suite import KINDS, SPLITS, build_split, build_suite, export_suite
from toolexpander.tasks.suite_catalogue import HELD_OUT_TOOLS, TOOLS, TOOLS_BY_NAME, placeholders


@pytest.fixture(scope="module")
def suite() -> dict[str, list[dict]]:
    return build_suite(0)


def _records(suite):
    return [record for split in SPLITS for record in suite[split]]


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**32))
def test_same_seed_same_suite_other_seed_other_suite(seed):
    small = {"n_train": 40, "n_test": 20, "n_test_unseen_tools": 20}
    assert json.dumps(build_suite(seed, **small)) == json.dumps(build_suite(seed, **small))
    other = build_suite(seed + 1, **small)
    for split in SPLITS:
        assert json.dumps(build_suite(seed, **small)[split]) != json.dumps(other[split])


@pytest.mark.parametrize(
    "sizes",
    [
        {"n_train": 300, "n_test": 120, "n_test_unseen_tools": 60},
        {"n_train": 7, "n_test": 1, "n_test_unseen_tools": 0},
        {"n_train": 1000, "n_test": 400, "n_test_unseen_tools": 200},
    ],
)
def test_counts_and_ids_per_split(sizes):
    suite = build_suite(1, **sizes)
    assert list(suite) == list(SPLITS)
    for split, n in zip(SPLITS, sizes.values(), strict=True):
        records = suite[split]
        assert len(records) == n
        assert [r["id"] for r in records] == [f"suite-{split}-{i:04d}" for i in range(1, n + 1)]
        assert len({query_text(r) for r in records}) == n, "queries repeat within a split"


def test_split_size_does_not_change_other_splits():
    assert build_suite(2, n_train=50)["test"] == build_suite(2, n_train=80)["test"]


def test_a_split_larger_than_its_pools_is_refused(monkeypatch):
    # One held-out tool with 5 values and 6 templates makes 30 single queries: 140 cannot be found.
    monkeypatch.setattr(suite_module, "HELD_OUT_TOOLS", ("track_package",))
    with pytest.raises(ValueError, match="distinct queries"):
        build_split("test_unseen_tools", 200)


def test_every_record_is_valid_and_shaped_by_its_kind(suite):
    for record in _records(suite):
        assert record_errors(record) == [], record["id"]
        assert [m["role"] for m in record["messages"]] == ["user"]
        expected_calls = {"single": 1, "parallel": 2, "no_call": 0}[record["kind"]]
        assert len(record["answer"]) == expected_calls, record["id"]


@pytest.mark.parametrize("split", SPLITS)
def test_kind_proportions(suite, split):
    counts = Counter(r["kind"] for r in suite[split])
    assert set(counts) == set(KINDS)
    shares = {kind: counts[kind] / len(suite[split]) for kind in KINDS}
    assert 0.65 <= shares["single"] <= 0.75
    assert 0.12 <= shares["parallel"] <= 0.18
    assert 0.12 <= shares["no_call"] <= 0.18


def test_two_to_four_distractors_in_varied_positions(suite):
    first_positions = Counter()
    for record in _records(suite):
        shown = [t["name"] for t in record["tools"]]
        called = {c["name"] for c in record["answer"]}
        assert 2 <= len(set(shown) - called) <= 4, record["id"]
        if record["kind"] == "single":
            first_positions[shown.index(record["answer"][0]["name"])] += 1
    assert len(first_positions) >= 4, "the right tool should not always sit in the same place"


def test_no_call_items_show_no_tool_of_the_request_domain(suite):
    """A no-call query is one of some tool's templates; no tool of that tool's domain is shown."""
    for split in SPLITS:
        for record in suite[split]:
            if record["kind"] != "no_call":
                continue
            sources = [t for t in TOOLS if any(_fits(query_text(record), tpl) for tpl in t.templates)]
            assert sources, record["id"]
            shown_domains = {TOOLS_BY_NAME[t["name"]].domain for t in record["tools"]}
            assert not shown_domains & {t.domain for t in sources}, record["id"]


def _fits(query: str, template: str) -> bool:
    """Whether ``template`` can have produced ``query`` (any text in place of each value)."""
    pattern = re.escape(template)
    for name in placeholders(template):
        pattern = pattern.replace(re.escape("{" + name + "}"), ".+?", 1)
    return re.fullmatch(pattern, query) is not None


def test_catalogue_has_enough_tools_and_every_parameter_type():
    assert len(TOOLS) >= 20
    assert len({t.name for t in TOOLS}) == len(TOOLS)
    assert 4 <= len(HELD_OUT_TOOLS) < len(TOOLS) // 4
    properties = [p for t in TOOLS for p in t.schema()["parameters"]["properties"].values()]
    assert {p["type"] for p in properties} >= {"string", "integer", "number", "boolean", "array"}
    assert any("enum" in p for p in properties)
    assert any(p["type"] == "array" and p["items"] == {"type": "string"} for p in properties)
    assert any(set(t.schema()["parameters"]["properties"]) - set(t.schema()["parameters"]["required"])
               for t in TOOLS), "no optional parameter"


@pytest.mark.parametrize("tool", TOOLS, ids=lambda t: t.name)
def test_templates_state_every_required_parameter(tool):
    assert len(tool.train_templates) >= 4
    required = {p.name for p in tool.params if p.required}
    names = {p.name for p in tool.params}
    for template in tool.templates:
        stated = placeholders(template)
        assert required <= set(stated) <= names, template
        assert len(stated) == len(set(stated)), template
    assert len(set(tool.templates)) == len(tool.templates)


def test_held_out_tools_appear_only_in_the_unseen_split(suite):
    for split in ("train", "test"):
        for record in suite[split]:
            assert not {t["name"] for t in record["tools"]} & set(HELD_OUT_TOOLS), record["id"]
    called = [c["name"] for r in suite["test_unseen_tools"] for c in r["answer"]]
    assert called and set(called) <= set(HELD_OUT_TOOLS)
    assert len(set(called)) == len(HELD_OUT_TOOLS)


@pytest.mark.parametrize("split", SPLITS)
def test_single_queries_come_from_the_split_templates(suite, split):
    """The query is exactly what a template of the split makes of the gold arguments (so every stated
    value, and only those, is in the answer), and a test query is what no train template makes."""
    for record in suite[split]:
        if record["kind"] != "single":
            continue
        call = record["answer"][0]
        tool = TOOLS_BY_NAME[call["name"]]
        arguments = call["arguments"]

        def makes(templates, arguments=arguments, tool=tool):
            return {tool.query(t, arguments) for t in templates if set(placeholders(t)) == set(arguments)}

        own = {"train": tool.train_templates, "test": tool.test_templates}.get(split, tool.templates)
        assert query_text(record) in makes(own), record["id"]
        if split == "test":
            assert query_text(record) not in makes(tool.train_templates), record["id"]


@pytest.mark.parametrize("tool", TOOLS, ids=lambda t: t.name)
def test_train_and_test_pools_are_disjoint(tool):
    for param in tool.params:
        if param.enum or param.type == "boolean":
            assert param.values.train == param.values.test
        else:
            assert param.values.test, param.name
            assert not set(param.values.train) & set(param.values.test), param.name


def _values(records):
    """``(tool, parameter) -> set of values`` over the answers, enums and booleans left out."""
    values: dict[tuple[str, str], set] = {}
    for record in records:
        for call in record["answer"]:
            params = {p.name: p for p in TOOLS_BY_NAME[call["name"]].params}
            for name, value in call["arguments"].items():
                if params[name].enum or params[name].type == "boolean":
                    continue
                items = value if isinstance(value, list) else [value]
                values.setdefault((call["name"], name), set()).update(json.dumps(v) for v in items)
    return values


def test_test_values_are_unseen_in_train(suite):
    train = _values(suite["train"])
    for split in ("test", "test_unseen_tools"):
        test = _values(suite[split])
        assert test, split
        for key, values in test.items():
            assert not values & train.get(key, set()), (split, key, values & train.get(key, set()))
    assert len(train) > 20


def test_numbers_stay_numbers(suite):
    kinds = Counter()
    for record in _records(suite):
        for call in record["answer"]:
            params = {p.name: p for p in TOOLS_BY_NAME[call["name"]].params}
            for name, value in call["arguments"].items():
                expected = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "array": list}
                assert isinstance(value, expected[params[name].type]), (record["id"], name, value)
                if params[name].type == "integer":
                    assert not isinstance(value, bool)
                kinds[type(value).__name__] += 1
    assert {"str", "int", "float", "bool", "list"} <= set(kinds)


def test_export_writes_valid_jsonl_with_the_returned_counts(tmp_path):
    out = tmp_path / "suite"
    counts = export_suite(str(out), seed=5)
    assert counts == {"train": 300, "test": 120, "test_unseen_tools": 60}
    expected = build_suite(5)
    for split in SPLITS:
        lines = (out / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
        assert len(lines) == counts[split]
        records = [json.loads(line) for line in lines]
        assert all(record_errors(r) == [] for r in records)
        assert records == expected[split]


def test_easy_level_poses_single_calls_with_one_distractor():
    easy = build_suite(0, level="easy")
    for split in SPLITS:
        for record in easy[split]:
            assert record_errors(record) == [], record["id"]
            assert record["kind"] == "single" and len(record["answer"]) == 1
            assert len(record["tools"]) == 2 and record["answer"][0]["name"] in {t["name"] for t in record["tools"]}
            assert record["id"].startswith(f"suite-easy-{split}-")
    assert {r["answer"][0]["name"] for r in easy["test_unseen_tools"]} <= set(HELD_OUT_TOOLS)
    # A level has its own records; the full level's are those of the default.
    assert build_suite(0, level="full") == build_suite(0)
    assert [query_text(r) for r in easy["train"]] != [query_text(r) for r in build_suite(0)["train"]]


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**32), st.sampled_from(["easy", "full"]), st.integers(1, 120))
def test_training_items_lead_with_one_item_per_tool(seed, level, n):
    train = build_split("train", n, seed, level)
    called = {record["answer"][0]["name"] for record in train if record["answer"]}
    # The first items call each tool the split calls, once each; the rest follow.
    leading = [record["answer"][0]["name"] for record in train[: len(called)]]
    assert sorted(leading) == sorted(called)
    ids = [record["id"] for record in train]
    assert ids == sorted(ids) and len(set(ids)) == n


def test_the_default_training_split_is_the_random_draw_led_by_every_seen_tool():
    seen = {tool.name for tool in TOOLS if tool.name not in HELD_OUT_TOOLS}
    for level in ("easy", "full"):
        train = build_suite(0, level=level)["train"]
        assert {record["answer"][0]["name"] for record in train[: len(seen)]} == seen
    # Same records as before the reordering (the demonstration pool every earlier measurement used).
    easy = sorted(json.dumps({**r, "id": ""}, sort_keys=True) for r in build_suite(0, level="easy")["train"])
    assert hashlib.sha256("".join(easy).encode()).hexdigest() == "ecb227d28eb002710d60fd0b44d9eb727e1c0f941d38187790059fd23a57652d"


def test_the_test_splits_are_those_of_every_earlier_measurement():
    # Reordering the training items must leave alone what every reported figure was measured on.
    splits = [build_suite(0, level=level)[split] for level in ("full", "easy") for split in ("test", "test_unseen_tools")]
    digest = hashlib.sha256(json.dumps(splits).encode()).hexdigest()
    assert digest == "19386bc9798d1a3de7a91acfcef30e8fbdd9c1f669b4e90b502ab9cff2fddd45"


def test_unknown_level_is_refused():
    with pytest.raises(ValueError, match="unknown suite level"):
        build_split("train", 3, level="hard")
