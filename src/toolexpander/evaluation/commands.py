"""``toolexpander eval``: score a model or a predictions file on BFCL, API-Bank or a data file.

Every option is a field of `toolexpander.evaluation.runner.EvalConfig`, parsed by transformers'
`HfArgumentParser` (as ``train`` uses TRL's `TrlParser`): ``--max_new_tokens`` and
``--max-new-tokens`` both work. Exit status 2 on bad input (unknown category, missing data,
unknown or duplicate prediction ids, a model that cannot be loaded).
"""

from __future__ import annotations


def register(subparsers) -> None:
    """Add ``eval``."""
    parser = subparsers.add_parser(
        "eval",
        add_help=False,  # `toolexpander eval --help` lists every field, through HfArgumentParser
        help="Score a model (or predictions) on BFCL, API-Bank or a data file.",
    )
    parser.set_defaults(run=run, accepts_extra=True)


def parse_eval_args(argv: list[str]):
    """The `EvalConfig` that ``argv`` describes (argparse exits 2 on an unknown or malformed option)."""
    from transformers import HfArgumentParser

    from toolexpander.evaluation.runner import EvalConfig

    parser = HfArgumentParser(
        EvalConfig,
        prog="toolexpander eval",
        description="Score a model, or predictions made elsewhere, on BFCL, API-Bank or a data file.",
    )
    (config,) = parser.parse_args_into_dataclasses(argv)
    return config


def run(args, extra: list[str]) -> int:
    from toolexpander.evaluation.runner import run_eval

    run_eval(parse_eval_args(extra))
    return 0
