"""``toolexpander train --config RECIPE.yaml [--field value ...]``: TrlParser style, every field
of `ToolExpanderScriptArguments`, `ToolExpanderConfig` and TRL's `ModelConfig` can be set in the
recipe and overridden on the command line."""

from __future__ import annotations

import sys

from toolexpander.errors import UserError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        add_help=False,  # `toolexpander train --help` lists every field, through TrlParser
        help="Train with GRPO + ToolExpander (see `toolexpander train --help`).",
    )
    parser.set_defaults(run=run_train, accepts_extra=True)


def parse_train_args(argv: list[str]):
    """``(script_args, config, model_args)`` from a recipe and overrides; UserError when invalid."""
    from trl import ModelConfig, TrlParser

    from toolexpander.trainer.config import ToolExpanderConfig, ToolExpanderScriptArguments

    parser = TrlParser(
        (ToolExpanderScriptArguments, ToolExpanderConfig, ModelConfig), prog="toolexpander train"
    )
    try:
        return parser.parse_args_and_config(argv)
    except (ValueError, TypeError, FileNotFoundError) as error:
        raise UserError(f"invalid training configuration: {error}") from error


def load_train_tasks(script_args) -> tuple[list[dict], list[dict]]:
    """The training records and the demonstration pool (every usable record, however few are
    trained on: SPEC §5); invalid ones stop the run (listed) unless ``skip_invalid``."""
    if script_args.dataset == "suite":
        from toolexpander.tasks.suite import build_suite

        tasks = build_suite(level=script_args.suite_level)[script_args.dataset_split]
    else:
        from toolexpander.tasks import load_records

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
        tasks = [t for t in result.records if t["answer"] is not None]
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


def run_train(args, extra: list[str]) -> int:
    script_args, config, model_args = parse_train_args(extra)
    from trl import get_peft_config

    from toolexpander.models import build_tiny_model, load_model_and_tokenizer, model_description
    from toolexpander.trainer.trainer import ToolExpanderTrainer

    if not model_args.model_name_or_path:
        raise UserError("set model_name_or_path in the recipe or with --model_name_or_path")
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
    # Destroys the process group of a multi-process run: left to interpreter exit, gloo's threads
    # sometimes abort the process ("terminate called without an active exception") after a good run.
    trainer.accelerator.end_training()
    print(f"saved to {config.output_dir} (metrics.jsonl, hard_samples.jsonl)")
    return 0
