"""`toolexpander train` from the command line: its help, a bad argument or recipe refused in one
line (exit 2) before the model loads, a run folder claimed (no silent appending, one training at a
time), and Ctrl-C answered with how to resume."""

import fcntl
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from toolexpander.cli import main
from toolexpander.errors import UserError
from toolexpander.trainer.commands import LOCK_FILE, claim_output_dir

REPO = Path(__file__).resolve().parents[1]
RECIPE = str(REPO / "recipes" / "tiny-cpu.yaml")


def train_argv(model_dir: str, out: Path, *overrides: str, recipe: str = RECIPE) -> list[str]:
    argv = ["train", "--config", recipe, "--model_name_or_path", model_dir, "--build_tiny_model", "false"]
    return [*argv, "--output_dir", str(out), "--max_train_items", "2", *overrides]


def exit_code(argv: list[str]) -> int:
    """What the shell would see: `main`'s return value, or the status argparse exits with."""
    try:
        return main(argv)
    except SystemExit as stop:
        return stop.code


def one_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def steps(path: Path) -> list[int]:
    return [row["step"] for row in map(json.loads, path.read_text().splitlines()) if "hard/ratio" in row]


@pytest.fixture
def no_model_load(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the configuration was refused")

    monkeypatch.setattr("toolexpander.models.load_model_and_tokenizer", refuse)


def test_help_lists_every_field_and_exits_0(capsys):
    assert exit_code(["train", "--help"]) == 0
    out = capsys.readouterr().out
    for name in (
        "--hard_max_correct",
        "--think_prefill",
        "--overwrite_output_dir",
        "--learning_rate",
        "--lora_r",
    ):
        assert name in out


@pytest.mark.parametrize(
    "overrides, recipe_text, message",
    [
        ([], "learning_rate: [1\nmode: : x\n", "recipe.yaml, line"),
        ([], "learning_rate: [0.1, 0.2]\n", "learning_rate must be a number, got [0.1, 0.2]"),
        ([], "max_steps: null\n", "max_steps must be a number, got None"),
        (["--learning_rate", "-1"], None, "learning_rate must be >= 0, got -1.0"),
        (["--learning_rate", "abc"], None, "invalid float value: 'abc'"),
        (["--suite_level", "impossible"], None, "suite_level must be one of full, easy, got 'impossible'"),
        (["--dataset_split", "nope"], None, "the suite has splits train, test, test_unseen_tools"),
        (["--max_train_items", "0"], None, "max_train_items must be >= 1"),
        (["--held_out_after", "0"], None, "held_out_after must be >= 1"),
        (["--mode", "grpo", "--carry_over", "swap"], None, "mode grpo poses no demonstrations"),
        (["--mode", "dapo_filter", "--reroll_all_fail", "true"], None, "would ignore reroll_all_fail"),
        (["--max_steps", "0"], None, "max_steps must be >= 1, or -1 to train num_train_epochs; got 0"),
        (["--hard_max_correct", "4"], None, "hard_max_correct must be < num_generations=4, got 4"),
        (["--fade_min_successes", "5"], None, "fade_min_successes must be <= num_generations=4, got 5"),
        (["--resume_from_checkpoint", "true"], None, "no checkpoint-* in"),
        (["--resume_from_checkpoint", "no/such/checkpoint-2"], None, "no/such/checkpoint-2 does not exist"),
        (["--resume_from_checkpoint", "true", "--overwrite_output_dir", "true"], None, "give one"),
    ],
    ids=[
        "yaml-syntax",
        "yaml-list-lr",
        "yaml-null-steps",
        "negative-lr",
        "text-lr",
        "suite-level",
        "suite-split",
        "no-items",
        "no-pool",
        "grpo-carry-over",
        "dapo-reroll",
        "zero-steps",
        "hard-max-correct",
        "fade-min-successes",
        "resume-nothing",
        "resume-missing",
        "resume-and-overwrite",
    ],
)
def test_a_bad_configuration_is_refused_in_one_line_before_the_model_loads(
    tmp_path, tiny_model_dir, capsys, no_model_load, overrides, recipe_text, message
):
    recipe = RECIPE
    if recipe_text is not None:
        recipe = tmp_path / "recipe.yaml"
        recipe.write_text(Path(RECIPE).read_text() + recipe_text)
    assert exit_code(train_argv(tiny_model_dir, tmp_path / "run", *overrides, recipe=str(recipe))) == 2
    assert message in one_error_line(capsys)


def test_an_output_dir_that_is_a_file_is_refused(tmp_path, tiny_model_dir, capsys, no_model_load):
    (tmp_path / "run").write_text("")
    assert exit_code(train_argv(tiny_model_dir, tmp_path / "run")) == 2
    assert "is a file, not a folder" in one_error_line(capsys)


def test_a_folder_holding_a_model_is_refused_and_left_as_it_was(
    tmp_path, tiny_model_dir, capsys, no_model_load
):
    model = shutil.copytree(tiny_model_dir, tmp_path / "model")
    before = sorted(p.name for p in model.iterdir())
    assert exit_code(train_argv(str(model), model)) == 2  # output_dir is the base model's own folder
    assert "holds an earlier run (config.json)" in one_error_line(capsys)
    assert sorted(p.name for p in model.iterdir()) == before


@pytest.mark.parametrize("damage", ["empty", "cut"])
def test_damaged_weights_are_named(tmp_path, tiny_model_dir, capsys, damage):
    model = shutil.copytree(tiny_model_dir, tmp_path / "model")
    weights = model / "model.safetensors"
    weights.write_bytes(b"" if damage == "empty" else weights.read_bytes()[:2000])
    assert exit_code(train_argv(str(model), tmp_path / "run")) == 2
    assert f"{weights} is damaged" in one_error_line(capsys)


def test_a_finished_run_is_refused_resumed_or_started_over_never_appended_to(
    tmp_path, tiny_model_dir, capsys
):
    out = tmp_path / "run"
    run = train_argv(tiny_model_dir, out, "--max_steps", "1", "--save_steps", "1")
    assert exit_code(run) == 0
    metrics, ledger = (out / "metrics.jsonl").read_text(), (out / "hard_samples.jsonl").read_text()
    capsys.readouterr()

    assert exit_code(run) == 2
    error = one_error_line(capsys)
    assert "holds an earlier run (metrics.jsonl, hard_samples.jsonl, config.json, 1 checkpoint-*)" in error
    assert "--resume_from_checkpoint true" in error and "--overwrite_output_dir true" in error
    assert (out / "metrics.jsonl").read_text() == metrics and (
        out / "hard_samples.jsonl"
    ).read_text() == ledger

    assert exit_code([*run, "--resume_from_checkpoint", "true"]) == 0  # already at max_steps: nothing to add
    assert steps(out / "metrics.jsonl") == [1] and (out / "hard_samples.jsonl").read_text() == ledger

    (out / "checkpoint-7").mkdir()  # a checkpoint of the earlier run that this one would not replace
    assert exit_code([*run, "--overwrite_output_dir", "true", "--save_strategy", "no"]) == 0
    assert steps(out / "metrics.jsonl") == [1]
    assert len((out / "hard_samples.jsonl").read_text().splitlines()) == len(ledger.splitlines())
    assert not list(out.glob("checkpoint-*"))


def hold_lock(folder: Path, pid: str = "4242"):
    folder.mkdir(parents=True, exist_ok=True)
    handle = (folder / LOCK_FILE).open("w")
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    handle.write(pid)
    handle.flush()
    return handle


def lock_is_free(folder: Path) -> bool:
    with (folder / LOCK_FILE).open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


def test_a_second_training_into_a_running_ones_folder_is_refused(
    tmp_path, tiny_model_dir, capsys, no_model_load
):
    out = tmp_path / "run"
    with hold_lock(out):
        (out / "metrics.jsonl").write_text("")  # the running one's log: still "running", not "earlier run"
        for extra in ([], ["--overwrite_output_dir", "true"]):
            assert exit_code(train_argv(tiny_model_dir, out, *extra)) == 2
            assert one_error_line(capsys) == f"error: another training is running in {out} (pid 4242)"
        assert (out / "metrics.jsonl").exists()


def config_for(out: Path, **fields) -> SimpleNamespace:
    return SimpleNamespace(
        **{"output_dir": str(out), "resume_from_checkpoint": None, "overwrite_output_dir": False, **fields}
    )


def test_other_ranks_check_the_folder_but_leave_the_lock_to_rank_0(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    out = tmp_path / "run"
    with hold_lock(out), claim_output_dir(config_for(out)):  # rank 0 holds it: not another training
        pass
    (out / "hard_samples.jsonl").write_text("")
    with pytest.raises(UserError, match="holds an earlier run"), claim_output_dir(config_for(out)):
        pass  # every rank refuses a folder holding a run
    with claim_output_dir(config_for(out, overwrite_output_dir=True)):
        assert (out / "hard_samples.jsonl").exists()  # only rank 0 deletes


@pytest.mark.parametrize("checkpoint", [False, True])
def test_ctrl_c_prints_how_to_resume_and_exits_130(tmp_path, tiny_model_dir, capsys, monkeypatch, checkpoint):
    from toolexpander.trainer.trainer import ToolExpanderTrainer

    def interrupted(self, *args, **kwargs):
        if checkpoint:
            Path(self.args.output_dir, "checkpoint-3").mkdir()
        raise KeyboardInterrupt

    monkeypatch.setattr(ToolExpanderTrainer, "train", interrupted)
    out = tmp_path / "run"
    try:
        code = exit_code(train_argv(tiny_model_dir, out))
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C escaped `toolexpander train` with a traceback")
    assert code == 130
    err = capsys.readouterr().err
    hint = err.strip().splitlines()[-1]  # after the model's loading bar
    assert "Traceback" not in err and hint.startswith("training interrupted")
    if checkpoint:
        assert f"continue from {out / 'checkpoint-3'}" in hint and "--resume_from_checkpoint true" in hint
    else:
        assert f"no checkpoint was saved in {out}" in hint and "--save_strategy steps" in hint
    assert lock_is_free(out)  # released on the way out


def test_held_out_after_keeps_later_records_out_of_training_and_demonstrations():
    from toolexpander.tasks.suite import build_suite
    from toolexpander.trainer.commands import load_train_tasks
    from toolexpander.trainer.config import ToolExpanderScriptArguments

    everything = [t["id"] for t in build_suite()["train"]]
    tasks, pool = load_train_tasks(ToolExpanderScriptArguments(held_out_after=10, max_train_items=4))
    assert [t["id"] for t in pool] == everything[:10]
    assert [t["id"] for t in tasks] == everything[:4]
    tasks, pool = load_train_tasks(ToolExpanderScriptArguments(max_train_items=4))
    assert [t["id"] for t in pool] == everything and len(tasks) == 4


@pytest.mark.parametrize("recipe", sorted(path.name for path in (REPO / "recipes").glob("*.yaml")))
def test_every_recipe_is_a_valid_training_configuration(recipe):
    """The recipes a user copies parse and pass every check a training run makes before loading."""
    from toolexpander.trainer.commands import parse_train_args

    # use_cpu: transformers refuses bf16 on a machine without a GPU unless told it trains there.
    argv = ["--config", str(REPO / "recipes" / recipe), "--use_cpu", "true"]
    script_args, config, model_args = parse_train_args(argv)
    assert model_args.model_name_or_path and script_args.dataset and config.output_dir.startswith("runs/")
