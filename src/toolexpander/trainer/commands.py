"""``toolexpander train --config RECIPE.yaml [--field value ...]``: TrlParser style, every field
of `ToolExpanderScriptArguments`, `ToolExpanderConfig` and TRL's `ModelConfig` can be set in the
recipe and overridden on the command line."""

from __future__ import annotations

import fcntl
import gc
import os
import shutil
import sys
import types
import typing
from contextlib import contextmanager
from pathlib import Path

from toolexpander.errors import UserError, yaml_error

# Held (flock) by the process that writes a run's files, for the whole training; it stays behind
# but marks nothing: a lock dies with its process, SIGKILL included.
LOCK_FILE = ".toolexpander.lock"
# Files that mark a folder as holding a run, besides our logs and checkpoint-* folders: a saved model.
SAVED_MODEL_FILES = ("config.json", "adapter_config.json")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        add_help=False,  # `toolexpander train --help` lists every field, through TrlParser
        help="Train with GRPO + ToolExpander (see `toolexpander train --help`).",
    )
    parser.set_defaults(run=run_train, accepts_extra=True)


def _numeric_fields(dataclass_types) -> dict[str, bool]:
    """``{field: optional}`` for every field typed int or float (or either or None)."""
    fields = {}
    for dtype in dataclass_types:
        for name, hint in typing.get_type_hints(dtype).items():
            union = typing.get_origin(hint) in (typing.Union, types.UnionType)
            kinds = set(typing.get_args(hint) if union else (hint,))
            numbers = kinds - {type(None)}
            if numbers and numbers <= {int, float}:
                fields[name] = type(None) in kinds
    return fields


def build_train_parser():
    """TrlParser over our three dataclasses whose every complaint is a one-line UserError."""
    from trl import ModelConfig, TrlParser

    from toolexpander.trainer.config import ToolExpanderConfig, ToolExpanderScriptArguments

    class TrainParser(TrlParser):
        def error(self, message):
            # argparse would print the usage of several hundred fields before its one line.
            raise UserError(f"invalid training configuration: {message}")

        def set_defaults_with_config(self, **kwargs):
            # argparse converts a recipe's strings by the field's type but takes any other YAML value
            # as it is: a list or a null where a number belongs would reach the optimizer.
            numeric = _numeric_fields(self.dataclass_types)
            for name, value in kwargs.items():
                if name in numeric and not (
                    (value is None and numeric[name])
                    or (isinstance(value, (int, float, str)) and not isinstance(value, bool))
                ):
                    raise UserError(f"invalid training configuration: {name} must be a number, got {value!r}")
            return super().set_defaults_with_config(**kwargs)

    return TrainParser(
        (ToolExpanderScriptArguments, ToolExpanderConfig, ModelConfig), prog="toolexpander train"
    )


def parse_train_args(argv: list[str]):
    """``(script_args, config, model_args)`` from a recipe and overrides; UserError when invalid."""
    import yaml

    parser = build_train_parser()
    try:
        return parser.parse_args_and_config(argv)
    except yaml.YAMLError as error:
        raise yaml_error(error, "the recipe") from error
    except (ValueError, TypeError, OSError) as error:
        raise UserError(f"invalid training configuration: {error}") from error


def load_train_tasks(script_args) -> tuple[list[dict], list[dict]]:
    """The training records and the demonstration pool (every usable record before
    ``held_out_after``, however few are trained on: SPEC §5); invalid ones stop the run (listed)
    unless ``skip_invalid``."""
    if script_args.dataset == "suite":
        from toolexpander.tasks.suite import build_suite

        tasks = build_suite(level=script_args.suite_level)[script_args.dataset_split]
    else:
        from toolexpander.tasks import bfcl_multi_turn, load_records

        result = load_records(
            script_args.dataset, script_args.dataset_format, split=script_args.dataset_split
        )
        if result.problems:
            listing = "\n".join(str(p) for p in result.problems[:20])
            more = f"\n... and {len(result.problems) - 20} more" if len(result.problems) > 20 else ""
            if not script_args.skip_invalid:
                raise UserError(
                    f"{len(result.problems)} invalid training records (use --skip_invalid to skip them):\n{listing}{more}"
                )
            print(f"skipping {len(result.problems)} invalid records:\n{listing}{more}", file=sys.stderr)
        # A multi-turn episode has no one answer: it is scored per turn (`toolexpander.trainer.episodes`).
        tasks = [t for t in result.records if t["answer"] is not None or t["task"] == bfcl_multi_turn.NAME]
    if script_args.held_out_after:
        tasks = tasks[: script_args.held_out_after]
    pool = tasks
    if script_args.max_train_items:
        tasks = tasks[: script_args.max_train_items]
    if not tasks:
        raise UserError(f"no usable training records in {script_args.dataset}")
    return tasks, pool


def resume_target(config) -> str | bool | None:
    """``--resume_from_checkpoint true`` means the newest checkpoint in ``output_dir``."""
    value = config.resume_from_checkpoint
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def is_main_process() -> bool:
    """Whether this process writes the run's files: rank 0 of a launched run (accelerate and
    torchrun set RANK), or a lone process."""
    return os.environ.get("RANK", "0") == "0"


def earlier_run(output_dir: Path) -> list[str]:
    """What in ``output_dir`` an earlier run left: our logs, checkpoints, a saved model."""
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    from toolexpander.hard_sampling.policy import LEDGER_FILE
    from toolexpander.trainer.trainer import METRICS_FILE

    if not output_dir.is_dir():
        return []
    found = [name for name in (METRICS_FILE, LEDGER_FILE, *SAVED_MODEL_FILES) if (output_dir / name).exists()]
    checkpoints = list(output_dir.glob(f"{PREFIX_CHECKPOINT_DIR}-*"))
    return found + ([f"{len(checkpoints)} {PREFIX_CHECKPOINT_DIR}-*"] if checkpoints else [])


def check_output_dir(config) -> None:
    """Refuse a folder holding an earlier run unless this run resumes it or starts over, and a
    resume with nothing to resume. Every process checks: all of them must refuse alike."""
    from transformers.trainer_utils import get_last_checkpoint

    out = Path(config.output_dir)
    resume = resume_target(config)
    if resume and config.overwrite_output_dir:
        raise UserError("--resume_from_checkpoint continues what --overwrite_output_dir deletes: give one")
    if resume is True and (not out.is_dir() or get_last_checkpoint(str(out)) is None):
        raise UserError(f"--resume_from_checkpoint true: no checkpoint-* in {out} to resume from")
    if isinstance(resume, str) and not Path(resume).is_dir():
        raise UserError(f"checkpoint {resume} does not exist")
    found = earlier_run(out)
    if found and not resume and not config.overwrite_output_dir:
        raise UserError(
            f"{out} holds an earlier run ({', '.join(found)}): continue it with --resume_from_checkpoint "
            "true, or start over with --overwrite_output_dir true"
        )


def start_over(output_dir: Path) -> None:
    """Delete an earlier run's logs and checkpoints, so that nothing of it is appended to."""
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    from toolexpander.hard_sampling.policy import LEDGER_FILE
    from toolexpander.trainer.trainer import METRICS_FILE

    removed = [path for path in (output_dir / METRICS_FILE, output_dir / LEDGER_FILE) if path.exists()]
    removed += output_dir.glob(f"{PREFIX_CHECKPOINT_DIR}-*")
    for path in removed:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    if removed:
        print(f"overwrite_output_dir: deleted {', '.join(sorted(p.name for p in removed))} from {output_dir}")


def lock_run_folder(path: Path):
    """``path`` opened (created if missing) and locked; a UserError naming the holder when it is held."""
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        pid = handle.read().strip() or "?"
        handle.close()
        raise UserError(f"another training is running in {path.parent} (pid {pid})") from None
    return handle


@contextmanager
def claim_output_dir(config):
    """Hold ``output_dir`` for the whole training: the main process locks it (a second training into
    it is refused) and, with ``overwrite_output_dir``, clears the earlier run; every process checks it."""
    out = Path(config.output_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"output_dir {out} is a file, not a folder")
    if not is_main_process():  # rank 0's lock is not another run: the other ranks only check
        check_output_dir(config)
        yield
        return
    lock_path = out / LOCK_FILE
    if lock_path.exists():  # a training that runs is reported as such, not as an earlier run
        lock_run_folder(lock_path).close()
    check_output_dir(config)  # before the lock file is made: a refused folder is left as it was
    out.mkdir(parents=True, exist_ok=True)
    with lock_run_folder(lock_path) as lock:  # closed on any exit, which releases the lock
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        if config.overwrite_output_dir:
            start_over(out)
        yield


def interrupted_hint(config) -> str:
    """One line for Ctrl-C: how to continue the run, or why it cannot be."""
    from transformers.trainer_utils import get_last_checkpoint

    out = Path(config.output_dir)
    checkpoint = get_last_checkpoint(str(out)) if out.is_dir() else None
    if checkpoint:
        instead = " instead of --overwrite_output_dir" if config.overwrite_output_dir else ""
        return (
            f"training interrupted; continue from {checkpoint} with the same command and "
            f"--resume_from_checkpoint true{instead}"
        )
    return (
        f"training interrupted; no checkpoint was saved in {out}, so it cannot be resumed (start over with "
        "--overwrite_output_dir true; --save_strategy steps --save_steps N saves one every N steps)"
    )


def run_train(args, extra: list[str]) -> int:
    script_args, config, model_args = parse_train_args(extra)
    if not model_args.model_name_or_path:
        raise UserError("set model_name_or_path in the recipe or with --model_name_or_path")
    try:
        with claim_output_dir(config):
            return train(script_args, config, model_args)
    except KeyboardInterrupt:
        if is_main_process():
            print(interrupted_hint(config), file=sys.stderr)
        return 130
    finally:
        release_process_group()


def release_process_group() -> None:
    """Free the finished trainer and destroy the process group of a multi-process run, while the
    interpreter is whole. The trainer is a reference cycle whose DDP model holds the gloo group: left
    to the collector it died during interpreter exit, where gloo's threads sometimes aborted a rank
    ("terminate called without an active exception") after a good run."""
    import torch.distributed as dist

    gc.collect()
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def train(script_args, config, model_args) -> int:
    """Load the data and the model, train, save; ``output_dir`` is claimed by the caller."""
    from trl import get_peft_config

    from toolexpander.models import build_tiny_model, load_model_and_tokenizer, model_description
    from toolexpander.trainer.trainer import ToolExpanderTrainer

    if script_args.build_tiny_model:
        build_tiny_model(model_args.model_name_or_path, seed=config.seed)
    tasks, demo_pool = load_train_tasks(script_args)
    print(
        f"model: {model_description(model_args.model_name_or_path)}; {len(tasks)} training items; mode {config.mode}"
    )
    model, tokenizer = load_model_and_tokenizer(model_args.model_name_or_path, dtype=model_args.dtype)
    try:
        trainer = ToolExpanderTrainer(
            model,
            config,
            tasks,
            demo_pool=demo_pool,
            processing_class=tokenizer,
            peft_config=get_peft_config(model_args),
        )
    except ValueError as error:
        raise UserError(f"invalid training configuration: {error}") from error
    trainer.train(resume_from_checkpoint=resume_target(config))
    trainer.save_model(config.output_dir)
    print(f"saved to {config.output_dir} (metrics.jsonl, hard_samples.jsonl)")
    return 0
