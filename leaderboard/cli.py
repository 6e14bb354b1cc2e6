"""``equibench submit`` and ``equibench leaderboard``, added to the ``equibench`` command line through
the ``equibench.commands`` entry-point group (``equibench_leaderboard.cli:register``)."""
from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    """Add the ``submit`` and ``leaderboard`` subcommands to ``equibench``'s subparsers."""
    p = subparsers.add_parser(
        "submit", help="check a results file and add it to the leaderboard store",
        description="Check a results file (schema, content hash, task version, complete run, split hash of "
                    "the installed task, no duplicate) and copy it into the leaderboard store.")
    p.add_argument("results", help="the results JSON written by `equibench run`")
    p.add_argument("--card", help="model card YAML (name, authors, code, paper, description, equivariant, "
                                   "augmentation, params), stored beside the results file")
    p.add_argument("--store", help="the store folder (default: the repository's leaderboard/submissions)")
    p.add_argument("--data-dir", help="folder with the task's real data files, to check the split hash")
    p.add_argument("--dry-run", action="store_true", help="run every check, store nothing")
    p.set_defaults(func=_cmd_submit)

    p = subparsers.add_parser(
        "leaderboard", help="render LEADERBOARD.md and the static site from the stored results",
        description="Check every stored results file and render LEADERBOARD.md and site/index.html from them.")
    p.add_argument("--store", help="the store folder (default: the repository's leaderboard/submissions)")
    p.add_argument("--out", help="where LEADERBOARD.md and site/ go (default: the repository's leaderboard/)")
    p.set_defaults(func=_cmd_leaderboard)


def _cmd_submit(args: argparse.Namespace) -> int:
    from .store import default_store
    from .submit import SubmissionError, submit

    store = args.store or default_store()
    try:
        target = submit(args.results, store=store, card=args.card, data_dir=args.data_dir, dry_run=args.dry_run)
    except SubmissionError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    if args.dry_run:
        print(f"ok (dry run): {args.results} passes every check and would be stored as {target}")
    else:
        print(f"accepted: stored as {target}\nrender the leaderboard with: equibench leaderboard")
    return 0


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .render import render
    from .store import StoreError, default_root, default_store

    store = Path(args.store) if args.store else default_store()
    if not store.is_dir():
        print(f"error: no leaderboard store at {store}; pass --store DIR (a folder of submitted results)",
              file=sys.stderr)
        return 2
    try:
        rendered = render(store, args.out or default_root())
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"rendered {rendered.n_files} results file(s) into {rendered.markdown} and {rendered.html}")
    return 0
