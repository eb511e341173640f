"""BFCL's multi-turn categories: records, the safe dispatcher, the per-turn checker against the
official one, and ``toolexpander eval`` on predictions.

Every item of the four categories the ``bfcl-eval`` wheel ships is checked (800 items, about a
second each way): the ground truth replayed through our dispatcher, and our verdicts against
BFCL's ``multi_turn_checker`` on the ground truth and on five perturbed copies of each item.
"""

from __future__ import annotations

import ast
import copy
import functools
import importlib.util
import itertools
import json
import shutil
import time
from pathlib import Path

import pytest

from toolexpander.cli import main
from toolexpander.data.schema import record_errors
from toolexpander.episodes import MAX_CALLS_PER_TURN, Dispatcher, public_functions
from toolexpander.evaluation.scoring import score_item
from toolexpander.tasks import bfcl, load_records
from toolexpander.tasks import bfcl_multi_turn as mt

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("bfcl_eval") is None,
    reason="needs the bfcl-eval wheel (its data and simulators)",
)

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "toolexpander"


@pytest.fixture(scope="module")
def data_dir() -> Path:
    return bfcl.default_data_dir()


@pytest.fixture(scope="module")
def loaded(data_dir) -> dict[str, list[dict]]:
    result = mt.load_categories(data_dir)
    assert {category: r.problems for category, r in result.items()} == {c: [] for c in mt.CATEGORIES}
    return {category: r.records for category, r in result.items()}


@pytest.fixture(scope="module")
def raw_truth(data_dir) -> dict[str, list[list[str]]]:
    """BFCL's own ground-truth call strings, by id."""
    truths = {}
    for category in mt.CATEGORIES:
        for line in (data_dir / "possible_answer" / f"BFCL_v4_{category}.json").read_text().splitlines():
            row = json.loads(line)
            truths[row["id"]] = row["ground_truth"]
    return truths


# ------------------------------------------------------------------------------------- records


def test_the_four_categories_load_as_valid_records(loaded, raw_truth):
    for category, records in loaded.items():
        assert len(records) == 200
        for record in records:
            assert record_errors(record) == []
            assert record["task"] == mt.NAME and record["category"] == category
            assert record["messages"] == record["turns"][0]
            assert len(record["turns"]) == len(record["ground_truth"]) == len(record["added_tools"])
            raw = raw_truth[record["id"]]
            assert [[call["name"] for call in calls] for calls in record["ground_truth"]] == [
                [text.split("(", 1)[0] for text in calls] for calls in raw
            ]


def test_miss_func_holds_its_functions_back_until_their_turn(loaded):
    for record in loaded["multi_turn_miss_func"]:
        offered = {tool["name"] for tool in record["tools"]}
        (turn,) = [i for i, added in enumerate(record["added_tools"]) if added]
        assert record["turns"][turn] == []  # BFCL's held-out turn has no user message
        assert {tool["name"] for tool in record["added_tools"][turn]}.isdisjoint(offered)
    for record in loaded["multi_turn_base"]:
        assert all(added == [] for added in record["added_tools"])
        assert all(turn for turn in record["turns"])


def test_positional_ground_truth_arguments_get_the_parameter_names(loaded):
    calls = [
        call for records in loaded.values() for r in records for turn in r["ground_truth"] for call in turn
    ]
    assert {"name": "sort", "arguments": {"file_name": "final_report.pdf"}} in calls
    assert {"name": "get_zipcode_based_on_city", "arguments": {"city": "Rivermist"}} in calls
    assert {"name": "mean", "arguments": {"numbers": [227.16, 2.552, 227.11, 227.09]}} in calls


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("os.system('ls')", "is not a call"),
        ("cd(folder=x)", "is not a literal"),
        ("cd(folder=__import__('os').getcwd())", "is not a literal"),
        ("cd(**{'folder': 'a'})", "does not fit"),
        ("cd('a', 'b')", "does not fit"),
        ("cd('a', folder='b')", "gives 'folder' twice"),
        ("rm_everything()", "names no method"),
        ("cd(folder='a'", "is not a call"),
        ("[cd(folder='a')]", "is not a call"),
    ],
)
def test_a_ground_truth_call_that_cannot_be_read_is_a_worded_error(text, reason):
    with pytest.raises(ValueError, match=reason):
        mt.read_call(text, {"cd": ["folder"]})


def _copy_data(data_dir: Path, tmp_path: Path, rows: list[dict], truths: list[dict]) -> Path:
    shutil.copytree(data_dir / mt.FUNC_DOC_DIR, tmp_path / mt.FUNC_DOC_DIR)
    (tmp_path / "possible_answer").mkdir()
    name = "BFCL_v4_multi_turn_base.json"
    (tmp_path / name).write_text("".join(json.dumps(row) + "\n" for row in rows))
    (tmp_path / "possible_answer" / name).write_text("".join(json.dumps(row) + "\n" for row in truths))
    return tmp_path / name


def test_items_that_cannot_be_used_are_problems_not_errors(data_dir, tmp_path):
    good = json.loads((data_dir / "BFCL_v4_multi_turn_base.json").read_text().splitlines()[0])
    truth = json.loads(
        (data_dir / "possible_answer" / "BFCL_v4_multi_turn_base.json").read_text().splitlines()[0]
    )
    rows, truths = [good], [truth]
    for number, (row_change, calls) in enumerate(
        [
            ({"involved_classes": ["Shell"]}, None),
            ({}, [["cd(folder=open('/etc/passwd'))"]] * 4),
            ({}, [["cd(folder='a')"]]),  # one call list for four turns
            ({"missed_function": {"9": ["cd"]}}, None),
            ({"question": "move the file"}, None),
            ({"initial_config": {"GorillaFileSystem": {"root": 5}}}, None),
            ({}, [["cd(folder='a')"], [3], [], []]),
        ]
    ):
        rows.append({**good, **row_change, "id": f"multi_turn_base_x{number}"})
        truths.append({"id": f"multi_turn_base_x{number}", "ground_truth": calls or truth["ground_truth"]})
    path = _copy_data(data_dir, tmp_path, rows, truths)
    result = load_records(str(path))  # auto-detected as bfcl_multi_turn
    assert [r["id"] for r in result.records] == [good["id"]]
    reasons = [problem.reason for problem in result.problems]
    assert [problem.line for problem in result.problems] == [2, 3, 4, 5, 6, 7, 8]
    assert "unknown simulator class 'Shell'" in reasons[0]
    assert "is not a literal" in reasons[1]
    assert "not one list of call strings per turn" in reasons[2] and "per turn" in reasons[6]
    assert "turn '9'" in reasons[3]
    assert "'question' must be a list" in reasons[4]
    assert "initial_config does not start the simulators" in reasons[5]


def test_bfcl_style_training_items_may_hold_their_own_ground_truth(data_dir, tmp_path, capsys):
    questions = (data_dir / "BFCL_v4_multi_turn_base.json").read_text().splitlines()[:2]
    truths = (data_dir / "possible_answer" / "BFCL_v4_multi_turn_base.json").read_text().splitlines()[:2]
    rows = [
        {**json.loads(question), "id": f"mine-{number}", "ground_truth": json.loads(truth)["ground_truth"]}
        for number, (question, truth) in enumerate(zip(questions, truths, strict=True))
    ]
    rows[1]["ground_truth"] = rows[1]["ground_truth"][:1]
    path = tmp_path / "my_episodes.jsonl"  # no possible_answer, no function docs beside it
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = load_records(str(path))
    (record,) = result.records
    assert record["id"] == "mine-0" and record["category"] == "multi_turn_base"
    assert record["tools"] and mt.check_episode(record, record["ground_truth"])["valid"]
    assert main(["data", "validate", str(path)]) == 2
    assert capsys.readouterr().out.startswith(f"{path}:2: the ground truth of 'mine-1' has not one list")


def test_a_file_without_its_ground_truth_is_a_user_error(data_dir, tmp_path):
    from toolexpander.errors import UserError

    path = tmp_path / "BFCL_v4_multi_turn_base.json"
    shutil.copy(data_dir / path.name, path)
    with pytest.raises(UserError, match="ground truth"):
        mt.load_multi_turn(path)


# ------------------------------------------------------------------------------------- dispatch


@pytest.fixture
def base_record(loaded) -> dict:
    return loaded["multi_turn_base"][0]  # TwitterAPI and GorillaFileSystem


def test_a_call_runs_on_the_rollouts_own_simulators(base_record):
    one, two = mt.Episode(base_record), mt.Episode(base_record)
    assert one.execute([{"name": "cd", "arguments": {"folder": "document"}}]) == [
        '{"current_working_directory": "document"}'
    ]
    assert two.execute([{"name": "pwd", "arguments": {}}]) == ['{"current_working_directory": "/workspace"}']
    assert one.execute([{"name": "pwd", "arguments": {}}]) == [
        '{"current_working_directory": "/workspace/document"}'
    ]


def _state(episode: mt.Episode) -> dict:
    return {name: copy.deepcopy(vars(instance)) for name, instance in episode.model.items()}


HOSTILE = [
    ({"name": "__class__", "arguments": {}}, "unknown function '__class__'"),
    ({"name": "_load_scenario", "arguments": {"scenario": {}}}, "unknown function '_load_scenario'"),
    ({"name": "__init__", "arguments": {}}, "unknown function '__init__'"),
    ({"name": "os.system", "arguments": {"command": "touch /tmp/pwned"}}, "unknown function 'os.system'"),
    ({"name": "eval", "arguments": {"source": "1"}}, "unknown function 'eval'"),
    ({"name": "root", "arguments": {}}, "unknown function 'root'"),  # an attribute, not a method
    ({"name": "cd", "arguments": {"folder": "x" * 10_000_000}}, "longer than 100,000 characters"),
    ({"name": "cd", "arguments": {"folder": {1: "a"}}}, "key that is not a string"),
    ({"name": "cd", "arguments": {"folder": ("a",)}}, "type tuple is not JSON"),
    ({"name": "cd", "arguments": {"folder": object()}}, "type object is not JSON"),
    ({"name": "cd", "arguments": {"folder": functools.reduce(lambda v, _: [v], range(1000), [])}}, "nested"),
    ({"name": "cd", "arguments": ["document"]}, "arguments must be an object"),
    ({"name": "cd", "arguments": {"folder": "a", "self": 1}}, "multiple values for argument 'self'"),
    ({"name": "cd", "arguments": {"directory": "a"}}, "unexpected keyword argument 'directory'"),
    ({"name": "cd", "arguments": {}}, "missing 1 required positional argument: 'folder'"),
    ({"name": 42, "arguments": {}}, "string 'name'"),
    ("cd(folder='..')", "string 'name'"),
    (None, "string 'name'"),
]


@pytest.mark.parametrize(("call", "error"), HOSTILE, ids=[str(i) for i in range(len(HOSTILE))])
def test_a_hostile_call_is_an_error_result_and_changes_nothing(base_record, call, error):
    episode = mt.Episode(base_record)
    before = _state(episode)
    (result,) = episode.execute([call])
    assert result.startswith("Error during execution: ") and error in result
    assert len(result) < 300
    assert _state(episode) == before


def test_ten_thousand_calls_in_one_turn_run_the_cap_and_fail_the_turn(base_record):
    episode = mt.Episode(base_record)
    start = time.perf_counter()
    results = episode.execute([{"name": "pwd", "arguments": {}}] * 10_000)
    assert time.perf_counter() - start < 10
    assert results[MAX_CALLS_PER_TURN - 1].startswith('{"current_working_directory"')
    assert all("more than 64 calls in one turn" in result for result in results[MAX_CALLS_PER_TURN:])
    assert episode.end_turn()["error_type"] == "multi_turn:too_many_calls"
    assert episode.execute([{"name": "pwd", "arguments": {}}])[0].startswith("{")  # a new turn, a new count


def test_math_arguments_that_would_compute_for_minutes_are_refused(loaded):
    record = next(r for r in loaded["multi_turn_base"] if "MathAPI" in r["involved_classes"])
    episode = mt.Episode(record)
    results = episode.execute(
        [
            {"name": "power", "arguments": {"base": 10, "exponent": 10**9}},
            {"name": "square_root", "arguments": {"number": 2, "precision": 10**9}},
            {"name": "logarithm", "arguments": {"value": 2, "base": 10, "precision": 10**9}},
            {"name": "power", "arguments": {"base": 2, "exponent": 10}},
            {"name": "power", "arguments": {"base": 2.0, "exponent": 1e9}},
        ]
    )
    assert ["not computed" in result for result in results] == [True, True, True, False, False]
    assert results[3] == '{"result": 1024}'
    assert results[4].startswith("Error during execution: ")  # OverflowError, raised by the method


def test_arguments_are_copied_so_no_state_is_shared_with_the_call(loaded):
    record = next(r for r in loaded["multi_turn_base"] if "TwitterAPI" in r["involved_classes"])
    episode = mt.Episode(record)
    tags = ["#a"]
    episode.execute([{"name": "post_tweet", "arguments": {"content": "hi", "tags": tags}}])
    tags.append("#changed")
    assert all("#changed" not in tweet["tags"] for tweet in episode.model["TwitterAPI"].tweets.values())


def test_only_plain_public_functions_of_the_class_are_methods():
    class Base:
        def inherited(self):
            return "base"

    class Tool(Base):
        helper = staticmethod(print)
        maker = classmethod(lambda cls: cls)

        def __init__(self):
            self.run = lambda: "instance attribute"

        def visible(self, a):
            return a

        def _hidden(self):
            return "hidden"

        @property
        def prop(self):
            return 1

    assert sorted(public_functions(Tool)) == ["inherited", "visible"]
    tool = Tool()
    dispatcher = Dispatcher([tool])
    assert dispatcher.execute([{"name": "visible", "arguments": {"a": [1]}}]) == ["[1]"]
    assert dispatcher.execute([{"name": "inherited", "arguments": {}}]) == ["base"]
    for name in ("helper", "maker", "run", "_hidden", "prop", "__dict__"):
        assert dispatcher.call({"name": name, "arguments": {}}).startswith("Error during execution: unknown")


def test_no_module_evaluates_text():
    banned = {"eval", "exec", "compile", "__import__"}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else None
                if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                    name = func.attr if func.value.id == "builtins" else None
                assert name not in banned, f"{path.relative_to(PACKAGE)}:{node.lineno} calls {name}"


# ------------------------------------------------------------------------------------- checker


@pytest.mark.parametrize("category", mt.CATEGORIES)
def test_the_ground_truth_replayed_through_our_dispatcher_passes_every_item(loaded, category):
    verdicts = [mt.check_episode(record, record["ground_truth"]) for record in loaded[category]]
    assert sum(verdict["valid"] for verdict in verdicts) == 200
    assert all(all(verdict["turns_valid"]) for verdict in verdicts)


_official_names = itertools.count()


@functools.cache
def _official():
    bfcl.prepare_import()
    from bfcl_eval.eval_checker.multi_turn_eval import multi_turn_checker, multi_turn_utils

    return multi_turn_checker.multi_turn_checker, multi_turn_utils


def call_string(call: dict) -> str:
    """A structured call as BFCL writes it (our own calls: the official checker evaluates it)."""
    return f"{call['name']}({', '.join(f'{key}={value!r}' for key, value in call['arguments'].items())})"


def official_valid(record: dict, turns: list[list[dict]], truth: list[list[str]]) -> bool:
    """BFCL's ``multi_turn_checker`` on ``turns`` rendered as call strings, one step per turn,
    an empty turn as no step (as BFCL's runner drops empty steps), against BFCL's own strings.
    Its instances live in its module's globals under the model name: a fresh name per call, and
    they are removed after."""
    checker, utils = _official()
    model = f"toolexpander_check{next(_official_names)}"
    decoded = [[[call_string(call) for call in calls]] if calls else [] for calls in turns]
    entry = {k: record[k] for k in ("id", "initial_config", "involved_classes")}
    try:
        return checker(decoded, truth, entry, record["category"], model)["valid"]
    finally:
        for name in [name for name in vars(utils) if name.startswith(model + "_")]:
            del vars(utils)[name]


def _wrong(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value + "_x"
    if isinstance(value, list):
        return value[:-1] if value else ["x"]
    return {} if value else {"x": 1}


# One method of each simulator class, called where its class is not involved.
FOREIGN = {
    "GorillaFileSystem": {"name": "pwd", "arguments": {}},
    "MathAPI": {"name": "add", "arguments": {"a": 1, "b": 2}},
    "MessageAPI": {"name": "list_users", "arguments": {}},
    "TwitterAPI": {"name": "get_user_stats", "arguments": {"username": "john"}},
    "TicketAPI": {"name": "get_user_tickets", "arguments": {}},
    "TradingBot": {"name": "get_current_time", "arguments": {}},
    "TravelAPI": {"name": "list_all_airports", "arguments": {}},
    "VehicleControlAPI": {"name": "get_current_speed", "arguments": {}},
}


def perturbed(record: dict, index: int) -> dict[str, list[list[dict]]]:
    """Copies of the ground truth with one change, the turn and the call picked by ``index``: a
    missing call, a call to another class's method instead of one, the same added, a wrong
    argument (in any call that has one); and, where a turn's ground truth makes no call, the next
    turn's calls made there too."""
    truth = record["ground_truth"]
    acting = [i for i, calls in enumerate(truth) if calls]
    turn = acting[index % len(acting)]
    calls = truth[turn]
    k = index % len(calls)
    foreign = FOREIGN[next(c for c in mt.SIMULATORS if c not in record["involved_classes"])]

    def with_turn(new_calls: list[dict], at: int = turn) -> list[list[dict]]:
        turns = copy.deepcopy(truth)
        turns[at] = new_calls
        return turns

    variants = {
        "missing_call": with_turn(calls[:k] + calls[k + 1 :]),
        "foreign_call": with_turn([*calls[:k], foreign, *calls[k + 1 :]]),
        "extra_foreign_call": with_turn([*calls[:k], foreign, *calls[k:]]),
    }
    with_arguments = [(t, j) for t in acting for j, call in enumerate(truth[t]) if call["arguments"]]
    if with_arguments:
        t, j = with_arguments[index % len(with_arguments)]
        changed = copy.deepcopy(truth[t])
        key = sorted(changed[j]["arguments"])[index % len(changed[j]["arguments"])]
        changed[j]["arguments"][key] = _wrong(changed[j]["arguments"][key])
        variants["wrong_argument"] = with_turn(changed, at=t)
    silent = [i for i, calls in enumerate(truth[:-1]) if not calls and truth[i + 1]]
    if silent:
        variants["early_calls"] = with_turn(truth[silent[0] + 1], at=silent[0])
    return variants


@pytest.mark.parametrize("category", mt.CATEGORIES)
def test_our_verdicts_equal_the_official_checkers(loaded, raw_truth, category):
    agreed, valid = {}, {}
    for index, record in enumerate(loaded[category]):
        truth = raw_truth[record["id"]]
        cases = {"ground_truth": record["ground_truth"], **perturbed(record, index)}
        for kind, turns in cases.items():
            ours = mt.check_episode(record, turns)["valid"]
            assert ours == official_valid(record, turns, truth), (record["id"], kind)
            agreed[kind] = agreed.get(kind, 0) + 1
            valid[kind] = valid.get(kind, 0) + ours
    assert agreed["ground_truth"] == valid["ground_truth"] == 200
    assert all(
        agreed[kind] == 200
        for kind in ("missing_call", "foreign_call", "extra_foreign_call", "wrong_argument")
    )
    # The changes are caught (a wrong argument can be harmless: 12 to 14 items a category), and
    # an extra call to an unknown function, which changes no state, never is.
    assert valid["missing_call"] < 20 and valid["foreign_call"] < 20 and valid["wrong_argument"] < 40
    assert valid["extra_foreign_call"] == 200


def test_a_turn_without_calls_fails_where_the_ground_truth_acts(base_record):
    turns = copy.deepcopy(base_record["ground_truth"])
    turns[1] = []
    verdict = mt.check_episode(base_record, turns)
    assert verdict["error_type"] == "multi_turn:empty_turn_model_response"
    assert verdict["turns_valid"][:2] == [True, False]


def test_a_turn_where_the_ground_truth_makes_no_call_is_not_checked(loaded):
    record = loaded["multi_turn_miss_func"][0]
    silent = record["ground_truth"].index([])
    turns = copy.deepcopy(record["ground_truth"])
    turns[silent] = [{"name": "cd", "arguments": {"folder": "nowhere"}}, {"name": "nothing", "arguments": {}}]
    verdict = mt.check_episode(record, turns)
    assert verdict["valid"] and verdict["turns_valid"][silent]


def test_results_of_earlier_turns_count_toward_a_later_turns(base_record, raw_truth):
    # BFCL compares the ground truth's results of a turn with the model's results of all turns so
    # far: the read-only sort of turn 2, made early in turn 1, still counts in turn 2.
    turns = copy.deepcopy(base_record["ground_truth"])
    assert turns[2] == [{"name": "sort", "arguments": {"file_name": "final_report.pdf"}}]
    turns[1], turns[2] = turns[1] + turns[2], [{"name": "pwd", "arguments": {}}]
    verdict = mt.check_episode(base_record, turns)
    assert verdict["valid"] and verdict["turns_valid"] == [True] * 4
    assert official_valid(base_record, turns, raw_truth[base_record["id"]])


@pytest.mark.parametrize(
    ("turns", "error_type"),
    [
        ([[]], "multi_turn:force_terminated"),
        ("[[cd(folder='a')]]", "multi_turn:decoder_failed"),
        ([[], [], [], []], "multi_turn:empty_turn_model_response"),
        ([["cd"], [], [], []], "multi_turn:instance_state_mismatch"),  # a call, whose result is an error
    ],
)
def test_predictions_of_the_wrong_shape_are_wrong_answers(base_record, turns, error_type):
    verdict = mt.check_episode(base_record, turns)
    assert not verdict["valid"] and verdict["error_type"] == error_type
    assert len(verdict["turns_valid"]) == 4


def test_a_multi_turn_record_is_not_scored_from_one_completion(base_record):
    item = score_item(base_record, "<tool_call>[]</tool_call>")
    assert item["error_type"] == "multi_turn:needs_turns" and not item["valid"]


# ------------------------------------------------------------------------------------- eval


def _predictions(path: Path, rows: list) -> str:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return str(path)


def test_eval_scores_a_predictions_file(loaded, tmp_path, capsys):
    records = loaded["multi_turn_base"][:5]
    rows = [{"id": r["id"], "turns": r["ground_truth"]} for r in records[:3]]
    rows.append({"id": records[3]["id"], "turns": [[] for _ in records[3]["ground_truth"]]})
    out = tmp_path / "out"
    arguments = ["eval", "--bench", "bfcl:multi_turn_base", "--limit", "5", "--out", str(out)]
    assert main([*arguments, "--predictions", _predictions(tmp_path / "p.jsonl", rows)]) == 0
    items = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    assert [item["valid"] for item in items] == [True, True, True, False, False]
    assert items[0]["turns"] == records[0]["ground_truth"] and all(items[0]["turns_valid"])
    assert [item["error_type"] for item in items[3:]] == [
        "multi_turn:empty_turn_model_response",
        "missing_prediction",
    ]
    results = json.loads((out / "results.json").read_text())
    assert results["categories"] == {"multi_turn_base": {"accuracy": 0.6, "correct": 3, "n": 5}}
    assert "multi_turn" not in results and results["missing_predictions"] == 1
    assert any(
        note.startswith("multi_turn left out: not run: multi_turn_miss_func") for note in results["notes"]
    )
    assert any(note.startswith("BFCL v4 overall left out") for note in results["notes"])
    assert results["config"]["call_format"] is None
    assert "| multi_turn_base | 5 | 60.00 |" in capsys.readouterr().out


def test_eval_gives_the_multi_turn_mean_over_the_four_categories(loaded, tmp_path, capsys):
    rows = [
        {"id": record["id"], "turns": record["ground_truth"]}
        for category in mt.CATEGORIES
        for record in loaded[category][: 2 if category == "multi_turn_base" else 1]
    ]
    predictions = _predictions(tmp_path / "p.jsonl", rows)
    bench = "bfcl:" + ",".join(mt.CATEGORIES)
    assert main(["eval", "--bench", bench, "--limit", "2", "--predictions", predictions]) == 0
    assert "| **multi_turn** | | **62.50** |" in capsys.readouterr().out  # (1 + 0.5 * 3) / 4


@pytest.mark.parametrize(
    ("extra", "rows", "message"),
    [
        ([], ['{"id": "multi_turn_base_0", "turns": "cd()"}'], "'turns', a list of call lists"),
        ([], ['{"id": "multi_turn_base_0", "completion": "[]"}'], "'turns', a list of call lists"),
        ([], ['{"id": "simple_python_0", "turns": []}'], "not in bfcl:multi_turn_base"),
    ],
)
def test_eval_rejects_what_it_cannot_score(tmp_path, capsys, extra, rows, message):
    arguments = ["eval", "--bench", "bfcl:multi_turn_base", "--limit", "1", *extra]
    if rows is not None:
        arguments += ["--predictions", _predictions(tmp_path / "p.jsonl", rows)]
    assert main(arguments) == 2
    assert message in capsys.readouterr().err


def test_eval_does_not_mix_multi_turn_and_single_turn_categories(capsys):
    assert main(["eval", "--bench", "bfcl:simple_python,multi_turn_base", "--predictions", "p.jsonl"]) == 2
    assert "scored apart" in capsys.readouterr().err
