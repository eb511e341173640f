"""The ``toolexpander`` command. Each sub-package registers its own subcommands; the heavy
imports (torch, transformers) happen inside the handlers, so ``score`` and ``data`` stay fast."""

from __future__ import annotations

import argparse
import sys

from toolexpander import __version__
from toolexpander.errors import UserError

# Each module's ``register(subparsers)`` adds its subcommands with ``set_defaults(run=...)``.
COMMAND_MODULES = (
    "toolexpander.data.commands",
    "toolexpander.rewards.commands",
    "toolexpander.trainer.commands",
    "toolexpander.evaluation.commands",
    "toolexpander.demo.commands",
    "toolexpander.study.commands",
)


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="toolexpander", description="Teach small LLMs to call tools: GRPO + ToolExpander (arXiv 2510.07737)."
    )
    parser.add_argument("--version", action="version", version=f"toolexpander {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.run(args, extra) or 0
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
