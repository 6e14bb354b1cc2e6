"""The ``equibench`` command line: list, run, validate (submit and leaderboard come from the
leaderboard package when it is installed)."""
from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points


def _cmd_list(args: argparse.Namespace) -> int:
    from .registry import BASELINE_GROUP, MODEL_GROUP, TASK_GROUP

    for title, group in (("tasks", TASK_GROUP), ("baselines", BASELINE_GROUP), ("plugin models", MODEL_GROUP)):
        found = sorted(entry_points(group=group), key=lambda ep: ep.name)
        if not found and group == MODEL_GROUP:
            continue
        print(f"{title}:")
        for ep in found:
            print(f"  {ep.name:<22} {_summary(ep)}")
        if not found:
            print("  (none installed)")
    return 0


def _summary(ep) -> str:
    try:
        obj = ep.load()
    except Exception as exc:  # a broken plugin must not hide the others
        return f"(failed to load: {exc})"
    text = getattr(obj, "description", None) or (obj.__doc__ or "").strip()
    return text.splitlines()[0] if text else ""


def _cmd_run(args: argparse.Namespace) -> int:
    from .registry import UnknownNameError, task_names
    from .runner import RunConfig, RunError, run

    if not task_names():
        print("error: no tasks are installed, so there is nothing to run. Install equibench with its built-in "
              "tasks (`pip install .` in the repository) or a package that registers tasks in the "
              "'equibench.tasks' entry-point group.", file=sys.stderr)
        return 2
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    config = RunConfig(task=args.task, model=args.model, dataset=args.dataset, data_dir=args.data_dir,
                       subset=args.subset, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                       seed=args.seed, device=args.device, out=args.out, augment=args.augment,
                       resume=args.resume, overwrite=args.overwrite, limit=args.limit, download=args.download,
                       progress=not args.no_progress)
    try:
        results = run(config)
    except (UnknownNameError, RunError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _print_summary(results, args.out)
    return 0


def _print_summary(results: dict, out: str) -> None:
    final = results["final"]
    print(f"task {results['task']['name']} v{results['task']['version']} ({results['task']['dataset']}), "
          f"model {results['model']['name']} ({results['model']['parameters']:,} parameters, "
          f"augmentation {'on' if results['model']['augmentation'] else 'off'})")
    for key, value in sorted(final["metrics"].items()):
        print(f"  {key:<28} {value:.6g}" if isinstance(value, float) else f"  {key:<28} {value}")
    if final["decomposition"]:
        c = final["decomposition"]["combined"]
        print(f"  relative equivariance error  {c['relative']:.3%} ± {c['relative_se'] or 0:.3%} (K={c['k']})")
    cost = results["cost"]
    if cost["train_samples_per_second"]:
        print(f"  train throughput             {cost['train_samples_per_second']:.1f} samples/s on "
              f"{results['environment']['device_name']}")
    if not results["status"]["complete"]:
        print(f"  partial run: {results['status']['partial_reason']} (the leaderboard will refuse it)")
    print(f"results written to {out}/")


def _cmd_validate(args: argparse.Namespace) -> int:
    from .results import ResultsError, read_results

    failed = 0
    for path in args.files:
        try:
            results = read_results(path)
        except ResultsError as exc:
            print(f"INVALID {exc}", file=sys.stderr)
            failed += 1
            continue
        state = "complete" if results["status"]["complete"] else f"partial ({results['status']['partial_reason']})"
        print(f"ok {path}: {results['task']['name']} v{results['task']['version']} / {results['model']['name']}, "
              f"{state}")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="equibench",
        description="Benchmark how well, how fast and at what cost a molecular model learns 3D-rotational "
                    "equivariance (after arXiv:2512.02303).")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list tasks and models")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("run", help="train and evaluate a model on a task, write a results JSON")
    p.add_argument("--model", required=True,
                   help="baseline name, entry point, path/to/file.py[:factory] or package.module:factory")
    p.add_argument("--task", default="md17", help="task name (see `equibench list`; default md17)")
    p.add_argument("--dataset", help="the task's dataset variant (default: the task's embedded default)")
    p.add_argument("--data-dir", help="folder with local copies of real data files")
    p.add_argument("--download", action="store_true",
                   help="allow downloading real data into $EQUIBENCH_DATA (never done otherwise)")
    p.add_argument("--subset", type=int, help="train on the first N training examples (quick runs; "
                                              "marked partial)")
    p.add_argument("--steps", type=int, help="training steps (default: the task budget)")
    p.add_argument("--batch-size", type=int, help="batch size (default: the task budget)")
    p.add_argument("--lr", type=float, help="learning rate (default: the task budget)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ...")
    p.add_argument("--out", default="results", help="folder for the results JSON and checkpoint")
    aug = p.add_mutually_exclusive_group()
    aug.add_argument("--augment", dest="augment", action="store_true", default=None,
                     help="force random-rotation augmentation (default: on unless the model is equivariant)")
    aug.add_argument("--no-augment", dest="augment", action="store_false",
                     help="no augmentation (negative control for non-equivariant models)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its checkpoint")
    p.add_argument("--overwrite", action="store_true", help="start again even if a checkpoint exists")
    p.add_argument("--limit", type=int, help="evaluate at most N held-out batches (smoke tests; marked partial)")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("validate", help="check results files against the schema, hash and task version")
    p.add_argument("files", nargs="+")
    p.set_defaults(func=_cmd_validate)

    for ep in sorted(entry_points(group="equibench.commands"), key=lambda e: e.name):
        ep.load()(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
