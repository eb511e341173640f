"""``toolexpander score``: score completions from a JSONL file with a reward."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from toolexpander.data.schema import Problem, call_errors, jsonl_rows
from toolexpander.errors import UserError
from toolexpander.files import jsonl_text, write_file
from toolexpander.rewards.call_formats import CALL_FORMATS
from toolexpander.rewards.parsing import decode_json
from toolexpander.rewards.rewards import get_reward


def register(subparsers) -> None:
    """Add ``score``."""
    parser = subparsers.add_parser(
        "score",
        help="score completions with a reward",
        description=(
            "Score each line of FILE, a JSON object with 'completion' (a string or a message list) and "
            "'answer' (a call list, its JSON text, or null), optionally 'id'. Writes every line back, in "
            "order, with 'reward' added. Blank lines are skipped; any malformed line stops the run."
        ),
    )
    parser.add_argument("file", type=Path, metavar="FILE.jsonl")
    parser.add_argument(
        "--reward",
        default="tool_n1",
        metavar="NAME",
        help="tool_n1 (default), toolrl, self_exemplify, or package.module:function",
    )
    parser.add_argument(
        "--call_format",
        default="tooln1",
        choices=CALL_FORMATS,
        help="how the completions write their calls: tooln1 (default, our format), hermes (Qwen), "
        "llama3_json (Llama 3.x), pythonic (Llama 3.2/4: [f(a=1)]), or native (hermes or llama3_json, "
        "told by each completion)",
    )
    parser.add_argument(
        "--out", type=Path, metavar="FILE", help="where to write the scored lines (default: stdout)"
    )
    parser.set_defaults(run=run_score)


def _line_problem(item: Any) -> str | None:
    """Why a decoded line cannot be scored, or None."""
    if not isinstance(item, dict):
        return f"a line must be a JSON object, got {type(item).__name__}"
    missing = [key for key in ("completion", "answer") if key not in item]
    if missing:
        return f"missing field {', '.join(repr(key) for key in missing)}"
    completion = item["completion"]
    if not isinstance(completion, str) and not (
        isinstance(completion, list) and all(isinstance(m, dict) and "content" in m for m in completion)
    ):
        return "'completion' must be a string or a list of messages with 'content'"
    if "id" in item and (isinstance(item["id"], bool) or not isinstance(item["id"], str | int)):
        return f"'id' must be a string or an integer, got {type(item['id']).__name__}"
    answer = item["answer"]
    if answer is not None and not isinstance(answer, list | str):
        return f"'answer' must be a list, a JSON string or null, got {type(answer).__name__}"
    # Decoded as the rewards decode it: a gold answer no reward could match is a malformed line.
    calls = decode_json(answer) if isinstance(answer, str) else answer
    if isinstance(answer, str) and not isinstance(calls, list):
        return "'answer' is a string but not the JSON text of a call list"
    if calls is None:
        return None
    return "; ".join(call_errors(calls, "answer", None)) or None


def read_items(path: Path) -> list[dict]:
    """The lines of ``path`` to score; a UserError after listing every malformed line on stderr."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read {path}: {error}") from error
    items, problems = [], []
    for number, item, reason in jsonl_rows(text):
        reason = reason or _line_problem(item)
        if reason:
            problems.append(Problem(str(path), number, reason))
        else:
            items.append(item)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        raise UserError(f"{len(problems)} malformed line(s) in {path}; nothing was scored")
    return items


def run_score(args, extra) -> int:
    """Score every line, then write them all (so a failed run leaves no partial output)."""
    reward = get_reward(args.reward)
    items = read_items(args.file)
    # A user's reward need not know call formats: it gets the option only when one is asked for.
    options = {} if args.call_format == "tooln1" else {"call_format": args.call_format}
    rewards = reward([item["completion"] for item in items], [item["answer"] for item in items], **options)
    if len(rewards) != len(items):
        raise UserError(f"reward {args.reward!r} returned {len(rewards)} values for {len(items)} completions")
    text = jsonl_text({**item, "reward": r} for item, r in zip(items, rewards))
    if args.out is None:
        sys.stdout.write(text)
    else:
        try:  # atomic: --out may be FILE itself, which a failed write must not destroy
            write_file(args.out, text)
        except OSError as error:
            raise UserError(f"cannot write {args.out}: {error}") from error
    scored = [r for r in rewards if r is not None]  # TRL lets a reward return None (no score)
    if scored:
        print(
            f"scored {len(scored)} completions with {args.reward}: mean {sum(scored) / len(scored):.4f}",
            file=sys.stderr,
        )
    return 0
