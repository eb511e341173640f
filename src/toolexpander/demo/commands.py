"""``toolexpander demo [--quick | --preset cpu|gpu | --multi-turn] [--out DIR]``."""

from __future__ import annotations

from toolexpander.models import SMOLLM2_HUB_ID


def register(subparsers) -> None:
    from toolexpander.demo.run import PRESETS

    parser = subparsers.add_parser(
        "demo",
        help="Train SmolLM2-135M four ways (GRPO, hard sampling with carry-over, SFT, SFT then carry-over) "
        "and report zero-shot accuracy.",
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu", help="run size (default: cpu)")
    parser.add_argument(
        "--quick", action="store_const", const="quick", dest="preset", help="same as --preset quick"
    )
    parser.add_argument("--out", default="runs/demo", help="folder for report.md, results.json and plots")
    parser.add_argument(
        "--model",
        default=None,
        help="base model: hub id, local folder or .gguf (default: SmolLM2-135M-Instruct; with --multi-turn a "
        "tiny random model built on the spot)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--arms",
        nargs="+",
        default=None,
        help="arms to train, in order (default: grpo carry_over sft sft_then_carry_over; any arm of "
        "`toolexpander compare`, e.g. sft carry_over sft_then_carry_over)",
    )
    parser.add_argument(
        "--multi-turn",
        action="store_true",
        help="instead: the multi-turn path in a few minutes (BFCL multi-turn episodes on their simulators: "
        "evaluate, train with hard sampling and carry-over, evaluate; a smoke test, not a measure)",
    )
    parser.add_argument(
        "--print-recipe",
        action="store_true",
        help="print the carry-over arm of the preset as a `toolexpander train --config` recipe and exit",
    )
    parser.set_defaults(run=run)


def run(args, extra: list[str]) -> int:
    from toolexpander.demo.run import DEFAULT_ARMS, recipe_text, run_demo

    if args.print_recipe:
        print(recipe_text(args.preset, seed=args.seed), end="")
        return 0
    if args.multi_turn:
        from toolexpander.demo.multi_turn import run_multi_turn_demo

        run_multi_turn_demo(args.out, args.model, seed=args.seed)
        return 0
    model = args.model or SMOLLM2_HUB_ID
    run_demo(args.preset, args.out, model_name=model, seed=args.seed, arms=args.arms or DEFAULT_ARMS)
    return 0
