"""``toolexpander data validate`` and ``toolexpander data export-suite``.

``validate`` prints ``N records`` and exits 0 when every record is usable. Otherwise it prints one
``PATH:LINE: what is wrong`` line per bad record on stdout (so the list can be piped or grepped),
a count on stderr, and exits 2. With ``--skip-invalid`` it exits 0 and prints ``N valid, M
skipped`` and how many were skipped for each kind of reason.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

from toolexpander.tasks import FORMATS, load_records


def register(subparsers) -> None:
    """Add ``data validate`` and ``data export-suite``."""
    data = subparsers.add_parser("data", help="Check tool-calling data; export the built-in tool suite.")
    commands = data.add_subparsers(dest="data_command", required=True)

    validate = commands.add_parser("validate", help="Check that a data file converts into valid records.")
    validate.add_argument("path", help="a local file (JSONL, JSON array, parquet) or a hub dataset id")
    validate.add_argument("--format", choices=("auto", *FORMATS), default="auto", help="source format (default: detect)")
    validate.add_argument("--split", default=None, help="split of a hub dataset (default: train)")
    validate.add_argument(
        "--skip-invalid", action="store_true", help="report bad records as skipped and exit 0"
    )
    validate.set_defaults(run=run_validate)

    export = commands.add_parser("export-suite", help="Write the synthetic tool suite as JSONL splits.")
    export.add_argument("out_dir", help="folder for <split>.jsonl")
    export.add_argument("--seed", type=int, default=0, help="random seed of the suite")
    export.set_defaults(run=run_export_suite)


def reason_kind(reason: str) -> str:
    """A reason with its particulars (quoted names, numbers) masked, so alike reasons count together.

    >>> reason_kind("answer[1] calls 'get_x', which is not among the offered tools (item glaive-3-4)")
    "answer[N] calls '…', which is not among the offered tools (item glaive-N-N)"
    """
    return re.sub(r"\d+", "N", re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", reason))


def run_validate(args, extra: list[str]) -> int:
    result = load_records(args.path, args.format, split=args.split)
    valid, skipped = len(result.records), len(result.problems)
    if not skipped:
        print(f"{valid} records")
        return 0
    if args.skip_invalid:
        print(f"{valid} valid, {skipped} skipped")
        for kind, count in Counter(reason_kind(p.reason) for p in result.problems).most_common():
            print(f"{count:>8}  {kind}")
        return 0
    for problem in result.problems:
        print(problem)
    print(f"{skipped} invalid, {valid} valid (--skip-invalid skips the invalid ones)", file=sys.stderr)
    return 2


def run_export_suite(args, extra: list[str]) -> int:
    from toolexpander.tasks.suite import export_suite

    for split, count in export_suite(args.out_dir, seed=args.seed).items():
        print(f"wrote {count} records to {Path(args.out_dir) / f'{split}.jsonl'}")
    return 0
