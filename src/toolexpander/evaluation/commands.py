"""``toolexpander eval``: score a model or a predictions file on BFCL, API-Bank or a data file.

Every option is a field of `toolexpander.evaluation.runner.EvalConfig`, whose ``help`` metadata
is the option's help text. Exit status 2 on bad input (unknown category, missing data, unknown
or duplicate prediction ids, a model that cannot be loaded).
"""

from __future__ import annotations

import dataclasses
import typing

from toolexpander.evaluation.runner import BACKENDS, EvalConfig
from toolexpander.prompts import PROMPT_STYLES

_CHOICES = {"prompt": PROMPT_STYLES, "backend": BACKENDS}


def register(subparsers) -> None:
    """Add ``eval``."""
    parser = subparsers.add_parser(
        "eval",
        help="Score a model (or predictions) on BFCL, API-Bank or a data file.",
        description="Score a model, or predictions made elsewhere, on BFCL, API-Bank or a data file.",
    )
    hints = typing.get_type_hints(EvalConfig)
    for spec in dataclasses.fields(EvalConfig):
        kind = next(
            t for t in typing.get_args(hints[spec.name]) or (hints[spec.name],) if t is not type(None)
        )
        required = spec.default is dataclasses.MISSING
        parser.add_argument(
            "--" + spec.name.replace("_", "-"),
            dest=spec.name,
            type=kind,
            required=required,
            default=None if required else spec.default,
            choices=_CHOICES.get(spec.name),
            help=spec.metadata["help"]
            + ("" if required or spec.default is None else f" (default: {spec.default})"),
        )
    parser.set_defaults(run=run)


def run(args, extra: list[str]) -> int:
    from toolexpander.evaluation.runner import run_eval

    run_eval(EvalConfig(**{spec.name: getattr(args, spec.name) for spec in dataclasses.fields(EvalConfig)}))
    return 0
