"""``toolexpander compare --config STUDY.yaml [--out DIR]``: the comparison study (`toolexpander.study.compare`)."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="Train and evaluate arms (sft, grpo, carry_over, ...) x seeds at an equal budget; one results table.",
    )
    parser.add_argument("--config", required=True, help="the study (YAML); see studies/ for examples")
    parser.add_argument("--out", help="output folder (default: the study's output_dir)")
    parser.add_argument(
        "--arms",
        nargs="+",
        help="run only these arms of the study now (finished runs of others stay on disk)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", help="run only these of the study's seeds now")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs at once, each its own process (e.g. 8 on one GPU for a 135M model; default 1)",
    )
    when = parser.add_mutually_exclusive_group()
    when.add_argument(
        "--report", action="store_true", help="train nothing: write the tables from the runs that finished"
    )
    when.add_argument("--no-report", action="store_true", help="train and evaluate only; tables later")
    when.add_argument(
        "--export",
        metavar="DIR",
        help="train nothing: copy the finished runs without model weights, and the tables, to DIR",
    )
    parser.set_defaults(run=run)


def run(args, extra: list[str]) -> int:
    from toolexpander.errors import UserError
    from toolexpander.study.compare import export_study, load_study, run_parallel, run_study, write_report

    study = load_study(args.config)
    if args.out:
        study.output_dir = args.out
    if args.arms:
        study.arms = study.only(args.arms)
    if args.seeds:
        unknown = sorted(set(args.seeds) - set(study.seeds))
        if unknown:
            raise UserError(f"the study has no seed {', '.join(map(str, unknown))}; it has {study.seeds}")
        study.seeds = [seed for seed in study.seeds if seed in args.seeds]
    if args.jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {args.jobs}")
    if args.export:
        export_study(study, args.export)
    elif args.report:
        write_report(study)
    elif args.jobs > 1 and not args.no_report:
        run_parallel(study, args.config, args.jobs)
    else:
        run_study(study, report=not args.no_report)
    return 0
