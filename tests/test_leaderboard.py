"""The leaderboard: submission checks, the store, the efficiency gap, and deterministic rendering.

Results files here are synthetic but schema-valid and sealed, with closed-form curves: a held-out
loss ``L0 * exp(-t / tau)`` makes the time to any target loss ``tau * log(L0 / target)`` exactly
(the gap's log-loss interpolation is exact on such curves).
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest

from equibench.results import seal, validate_results
from equibench_leaderboard.efficiency import (best_loss, efficiency_gap, step_settled_at_or_below, paired_gaps,
                                              time_to_loss)
from equibench_leaderboard.render import render
from equibench_leaderboard.store import StoreError, load_store, relative_path
from equibench_leaderboard.submit import SubmissionError, submit

STEPS = [0, 10, 30, 100, 300, 1000, 3000]
CPU = "cpu: test-machine (2 threads)"


@pytest.fixture(scope="module")
def xtb_split_hash() -> str:
    from equibench.registry import load_task_class

    return load_task_class("md17")(dataset="xtb-ethanol").split_hash()


def decomposition(relative: float) -> dict:
    total = 1.0
    entry = {"total": total, "twirl": total * (1 - relative), "equiv": total * relative, "relative": relative,
             "total_se": 0.01, "twirl_se": 0.01, "equiv_se": 1e-4, "relative_se": relative / 10, "k": 16,
             "exact": False, "loss": "mse", "n_examples": 32}
    return {"combined": entry, "outputs": {"energy": dict(entry), "forces": dict(entry)}}


def make_results(model: str = "eqnet", equivariant: bool = True, augmentation: bool | None = None, seed: int = 0,
                 tau: float = 100.0, seconds_per_step: float = 0.1, l0: float = 4.0, rel0: float = 0.5,
                 rel_decay: float = 100.0, forces_mae: float = 10.0, device_name: str = CPU,
                 samples_per_second: float = 160.0, split_hash: str = "0" * 64, dataset: str = "xtb-ethanol",
                 complete: bool = True, card: dict | None = None) -> dict:
    """A sealed, schema-valid md17 results file with closed-form curves.

    loss(t) = l0 * exp(-t / tau) at t = step * seconds_per_step; relative equivariance error
    rel0 * exp(-step / rel_decay) (0 for an equivariant model).
    """
    augmentation = (not equivariant) if augmentation is None else augmentation
    curve = []
    for step in STEPS:
        t = step * seconds_per_step
        relative = 0.0 if equivariant else rel0 * math.exp(-step / rel_decay)
        curve.append({"step": step, "train_seconds": t, "samples_seen": 16 * step,
                      "metrics": {"energy_mae": 1.0, "forces_mae": forces_mae, "loss": l0 * math.exp(-t / tau)},
                      "decomposition": decomposition(relative)})
    results = {
        "schema_version": 1,
        "equibench": {"version": "0.1.0", "git_commit": None},
        "task": {"name": "md17", "version": "1.0", "dataset": dataset, "subset": None, "split_hash": split_hash},
        "model": {"name": model, "source": f"baseline:{model}", "parameters": 1000 + len(model),
                  "equivariant": equivariant, "augmentation": augmentation, "description": f"the {model} model",
                  "card": card or {}},
        "environment": {"python": "3.11", "torch": "2.4", "device": "cpu", "device_name": device_name},
        "seed": seed,
        "budget": {"steps": 3000, "batch_size": 16, "lr": 0.002, "task_default_steps": 3000},
        "probe": {"n_examples": 32, "k": 16, "seed": 0, "group": "so3"},
        "curve": curve,
        "final": {"metrics": {"energy_mae": 1.0, "forces_mae": forces_mae, "loss": curve[-1]["metrics"]["loss"]},
                  "decomposition": curve[-1]["decomposition"]},
        "cost": {"train_step_seconds": 16 / samples_per_second, "train_samples_per_second": samples_per_second,
                 "inference_samples_per_second": 5 * samples_per_second, "peak_memory_bytes": 1 << 20,
                 "peak_memory_kind": "process_peak_rss", "warmup_steps": 5,
                 "train_seconds": STEPS[-1] * seconds_per_step},
        "status": {"complete": complete, "steps_done": 3000,
                   "partial_reason": None if complete else "--steps 300 is below the task budget of 3000"},
        "created": "2025-01-01T00:00:00+00:00",
        "content_hash": "",
    }
    sealed = seal(results)
    validate_results(sealed, check_task=False)
    return sealed


def write(results: dict, path: Path) -> Path:
    path.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    return path


# --- the efficiency gap and the 2 % step, in closed form -------------------------------------------
def test_efficiency_gap_closed_form():
    # equivariant: slower per step (0.4 s) and tau = 200 s; non-equivariant: 0.1 s per step, tau = 50 s
    e = make_results("eqnet", True, tau=200.0, seconds_per_step=0.4, samples_per_second=40.0)
    n = make_results("mlp", False, tau=50.0, seconds_per_step=0.1, samples_per_second=160.0)
    best_e, best_n = 4.0 * math.exp(-1200 / 200), 4.0 * math.exp(-300 / 50)
    assert best_loss(e["curve"]) == pytest.approx(best_e) and best_loss(n["curve"]) == pytest.approx(best_n)
    gap = efficiency_gap(e, n)
    target = max(best_e, best_n)
    assert gap.target_loss == pytest.approx(target)
    assert gap.t_equivariant == pytest.approx(200.0 * math.log(4.0 / target))
    assert gap.t_nonequivariant == pytest.approx(50.0 * math.log(4.0 / target))
    assert gap.gap == pytest.approx(200.0 / 50.0)
    assert gap.throughput_ratio == pytest.approx(160.0 / 40.0)


def test_time_to_loss_interpolates_in_log_loss_between_checkpoints():
    curve = [{"step": 0, "train_seconds": 0.0, "metrics": {"loss": 1.0}},
             {"step": 10, "train_seconds": 10.0, "metrics": {"loss": 1e-2}},
             {"step": 20, "train_seconds": 30.0, "metrics": {"loss": 1e-3}}]
    assert time_to_loss(curve, 1e-1) == pytest.approx(5.0)  # halfway in log10 between 1 and 1e-2
    assert time_to_loss(curve, 10 ** -2.5) == pytest.approx(20.0)
    assert time_to_loss(curve, 2.0) == 0.0  # already there at the first checkpoint
    assert time_to_loss(curve, 1e-4) is None  # never reached
    # unsorted input and a missing loss change nothing
    shuffled = [curve[2], {"step": 5, "train_seconds": 4.0, "metrics": {"loss": None}}, curve[0], curve[1]]
    assert time_to_loss(shuffled, 1e-1) == pytest.approx(5.0)


def test_step_settled_at_or_below_two_percent():
    # relative = 0.5 * exp(-step / 100) <= 0.02 first for step >= 100 * log(25) = 321.9 -> checkpoint 1000
    run = make_results("mlp", False, rel0=0.5, rel_decay=100.0)
    assert step_settled_at_or_below(run["curve"]) == 1000
    assert step_settled_at_or_below(run["curve"], 0.5) == 0
    never = make_results("mlp", False, rel0=0.5, rel_decay=1e9)
    assert step_settled_at_or_below(never["curve"]) is None
    exactly = [{"step": 7, "decomposition": {"combined": {"relative": 0.02}}}]
    assert step_settled_at_or_below(exactly) == 7
    # an untrained model reads ~0, rises as it learns, then falls: only the fall counts
    rise_fall = [{"step": s, "decomposition": {"combined": {"relative": r}}}
                 for s, r in ((0, 0.005), (100, 0.3), (1000, 0.01), (3000, 0.015))]
    assert step_settled_at_or_below(rise_fall) == 1000
    assert step_settled_at_or_below(rise_fall[:2]) is None


def test_runs_on_different_devices_are_never_paired():
    e = make_results("eqnet", True)
    n_same = make_results("mlp", False)
    n_gpu = make_results("mlp2", False, device_name="NVIDIA H100")
    pairs = paired_gaps([e, n_same, n_gpu])
    assert [(i, j) for i, j, _ in pairs] == [(0, 1)]
    with pytest.raises(ValueError, match="never compared"):
        efficiency_gap(e, n_gpu)
    with pytest.raises(ValueError, match="equivariant"):
        efficiency_gap(n_same, e)


# --- submission checks ------------------------------------------------------------------------------
def test_submit_stores_a_complete_run_byte_for_byte(tmp_path, xtb_split_hash):
    source = write(make_results(split_hash=xtb_split_hash), tmp_path / "run.json")
    card = tmp_path / "card.yaml"
    card.write_text("name: EqNet\nauthors: [A. Author, B. Author]\ncode: https://example.org/eqnet\n"
                    "equivariant: true\naugmentation: false\n")
    store = tmp_path / "store"
    target = submit(source, store=store, card=card)
    results = json.loads(source.read_text())
    assert target == store / "md17" / "xtb-ethanol" / f"eqnet__noaug__seed0__{results['content_hash'][7:19]}.json"
    assert target.read_bytes() == source.read_bytes()
    assert target.with_name(target.name.replace(".json", ".card.yaml")).read_text() == card.read_text()
    [run] = load_store(store)
    assert run.card["name"] == "EqNet" and run.card["authors"] == "A. Author, B. Author"


def test_submit_refuses_a_tampered_file(tmp_path, xtb_split_hash):
    results = make_results(split_hash=xtb_split_hash)
    results["final"]["metrics"]["forces_mae"] = 0.001  # edited after sealing
    with pytest.raises(SubmissionError, match="content_hash does not match"):
        submit(write(results, tmp_path / "run.json"), store=tmp_path / "store")
    assert not (tmp_path / "store").exists()


def test_submit_refuses_a_partial_run_naming_the_reason(tmp_path, xtb_split_hash):
    source = write(make_results(split_hash=xtb_split_hash, complete=False), tmp_path / "run.json")
    with pytest.raises(SubmissionError, match=r"partial \(--steps 300 is below the task budget of 3000\)"):
        submit(source, store=tmp_path / "store")


def test_submit_refuses_duplicates(tmp_path, xtb_split_hash):
    store = tmp_path / "store"
    first = write(make_results(split_hash=xtb_split_hash), tmp_path / "a.json")
    submit(first, store=store)
    with pytest.raises(SubmissionError, match="duplicate: this exact file is already stored"):
        submit(first, store=store)
    # another file of the same (task, dataset, model, augmentation, seed): a rerun, not a new result
    rerun = write(make_results(split_hash=xtb_split_hash, forces_mae=9.0), tmp_path / "b.json")
    with pytest.raises(SubmissionError, match="same task md17, dataset xtb-ethanol, model eqnet, augmentation off, "
                                              "seed 0 is already stored"):
        submit(rerun, store=store)
    # another seed is welcome
    submit(write(make_results(split_hash=xtb_split_hash, seed=1), tmp_path / "c.json"), store=store)
    assert len(load_store(store)) == 2


def test_submit_refuses_a_split_hash_mismatch(tmp_path):
    source = write(make_results(split_hash="ab" * 32), tmp_path / "run.json")
    with pytest.raises(SubmissionError, match="split hash mismatch for task 'md17' dataset 'xtb-ethanol'"):
        submit(source, store=tmp_path / "store")


def test_submit_says_when_the_data_to_check_the_split_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("EQUIBENCH_DATA", str(tmp_path / "empty-cache"))
    source = write(make_results(dataset="rmd17-aspirin", split_hash="ab" * 32), tmp_path / "run.json")
    with pytest.raises(SubmissionError, match="data is not available on this machine.*--data-dir"):
        submit(source, store=tmp_path / "store", data_dir=str(tmp_path / "nothing-here"))


def test_submit_refuses_a_card_that_contradicts_the_file(tmp_path, xtb_split_hash):
    source = write(make_results(split_hash=xtb_split_hash), tmp_path / "run.json")
    card = tmp_path / "card.yaml"
    card.write_text("equivariant: false\n")
    with pytest.raises(SubmissionError, match="equivariant is False but the results file says"):
        submit(source, store=tmp_path / "store", card=card)
    card.write_text("nmae: typo\n")
    with pytest.raises(SubmissionError, match="unknown card field"):
        submit(source, store=tmp_path / "store", card=card)
    card.write_text("code: javascript:alert(1)\n")  # would become a link on the page
    with pytest.raises(SubmissionError, match="must be an http"):
        submit(source, store=tmp_path / "store", card=card)


def test_real_run_file_is_checked_against_the_real_split(tmp_path, rmd17_dir, example_model):
    """A real (short) run, completed by hand and resealed: passes with the data, fails without it."""
    from equibench.runner import RunConfig, run

    out = tmp_path / "run"
    run(RunConfig(task="md17", model=example_model, dataset="rmd17-ethanol", data_dir=str(rmd17_dir), steps=2,
                  batch_size=2, out=str(out), progress=False, eval_steps=[0, 2], limit=1))
    results = json.loads(next(out.glob("*.json")).read_text())
    with pytest.raises(SubmissionError, match="partial"):
        submit(next(out.glob("*.json")), store=tmp_path / "store")
    results["status"] = {"complete": True, "steps_done": 2, "partial_reason": None}
    source = write(seal(results), tmp_path / "complete.json")
    target = submit(source, store=tmp_path / "store", data_dir=str(rmd17_dir), dry_run=True)
    assert target.name.startswith("my_model__aug__seed0__") and not target.exists()


# --- the store and rendering --------------------------------------------------------------------------
@pytest.fixture
def filled_store(tmp_path) -> Path:
    """Three models on one CPU, one on another device, and a second dataset."""
    store = tmp_path / "store"
    runs = [
        make_results("eqnet", True, tau=200.0, seconds_per_step=0.4, samples_per_second=40.0, forces_mae=5.0,
                     card={"code": "https://example.org/eqnet", "authors": ["A. Author"], "cutoff": 5.0}),
        make_results("mlp", False, tau=50.0, seconds_per_step=0.1, samples_per_second=160.0, forces_mae=20.0),
        make_results("mlp", False, augmentation=False, tau=50.0, seconds_per_step=0.1, samples_per_second=160.0,
                     rel0=0.9, rel_decay=1e9, forces_mae=50.0),
        make_results("transformer", False, tau=100.0, seconds_per_step=0.2, samples_per_second=80.0,
                     forces_mae=12.0, device_name="NVIDIA H100 80GB HBM3"),
        make_results("eqnet", True, dataset="xtb-aspirin", forces_mae=8.0),
    ]
    for results in runs:
        path = store / relative_path(results)
        path.parent.mkdir(parents=True, exist_ok=True)
        write(results, path)
    return store


def _md_rows(markdown: str, section_title: str) -> list[list[str]]:
    """The body rows of the first table after a heading."""
    lines = markdown.splitlines()
    start = lines.index(f"## {section_title}")
    table = []
    for line in lines[start:]:
        if line.startswith("|"):
            table.append([cell.strip() for cell in line.strip("|").split("|")])
        elif table:
            break
    return table[2:]


def test_markdown_has_the_expected_rows(filled_store, tmp_path):
    rendered = render(filled_store, tmp_path / "out")
    markdown = rendered.markdown.read_text()
    assert rendered.n_files == 5
    rows = _md_rows(markdown, "md17 / xtb-ethanol (task v1.0)")
    # ranked by forces_mae; the no-augmentation run is labelled; eqnet links to its code
    assert [row[0] for row in rows] == ["[eqnet](https://example.org/eqnet)", "transformer", "mlp", "mlp (no aug)"]
    eqnet, transformer, mlp, noaug = rows
    assert eqnet[1:5] == ["yes", "no", "0", "5"]
    assert eqnet[5] == "0% ± 0%" and eqnet[6] == "0"  # exactly equivariant: <= 2% from the first checkpoint
    assert eqnet[7] == "4.00× vs mlp"  # the best-paired non-equivariant run on the same CPU
    assert eqnet[8:] == ["40", "200", "1,005", CPU]
    assert mlp[5] == "4.68e-12% ± 4.7e-13%"  # 0.5 exp(-3000 / 100), in percent, ± a tenth of it
    assert mlp[6] == "1000" and mlp[7] == "4.00× vs eqnet"
    assert noaug[6] == "never"
    assert transformer[7] == "–" and transformer[-1] == "NVIDIA H100 80GB HBM3"  # nothing to pair with on H100
    ethanol = markdown.split("\n## md17 / xtb-ethanol")[1].split("\n## ")[0]
    gap_lines = [line for line in ethanol.splitlines() if line.startswith("| eqnet ")]
    assert len(gap_lines) == 2  # eqnet vs mlp and eqnet vs mlp (no aug), never vs the H100 run
    assert "## md17 / xtb-aspirin (task v1.0)" in markdown
    assert "No (equivariant, non-equivariant) pair of runs on the same device yet." in markdown


def test_rendering_is_deterministic(filled_store, tmp_path):
    first = render(filled_store, tmp_path / "one")
    second = render(filled_store, tmp_path / "two")
    assert first.markdown.read_bytes() == second.markdown.read_bytes()
    assert first.html.read_bytes() == second.html.read_bytes()
    page = first.html.read_text()
    # two sections, each with two plots; a runs table each, a gap table where there is a pair
    assert page.count("<svg") == 4 and page.count('<table class="sortable"') == 3
    # self-contained: inline style, script and plots, nothing fetched from elsewhere
    assert "<style>" in page and "<script>" in page
    assert "<link" not in page and "src=" not in page and "@import" not in page and "url(http" not in page


def test_rendering_is_deterministic_across_processes(filled_store, tmp_path):
    """Another interpreter, with another hash seed (set and dict orders), writes the same bytes."""
    import os
    import subprocess
    import sys

    here = render(filled_store, tmp_path / "here")
    code = ("import sys; from equibench_leaderboard.render import render; "
            "render(sys.argv[1], sys.argv[2])")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", code, str(filled_store), str(tmp_path / "there")], check=True, env=env,
                   timeout=300)
    assert (tmp_path / "there" / "LEADERBOARD.md").read_bytes() == here.markdown.read_bytes()
    assert (tmp_path / "there" / "site" / "index.html").read_bytes() == here.html.read_bytes()


def test_render_refuses_a_store_with_an_edited_file(filled_store, tmp_path):
    path = next(filled_store.glob("md17/xtb-ethanol/mlp__aug*.json"))
    data = json.loads(path.read_text())
    data["final"]["metrics"]["forces_mae"] = 0.1
    path.write_text(json.dumps(data))
    with pytest.raises(StoreError, match="content_hash does not match"):
        render(filled_store, tmp_path / "out")


def test_render_refuses_misplaced_and_partial_files(filled_store, tmp_path):
    partial = make_results("late", False, complete=False)
    write(partial, filled_store / relative_path(partial))
    other = make_results("moved", False)
    write(other, filled_store / "md17" / "xtb-ethanol" / "renamed.json")
    with pytest.raises(StoreError) as info:
        load_store(filled_store)
    assert "partial run" in str(info.value) and "misplaced" in str(info.value)


def test_empty_store_renders(tmp_path):
    (tmp_path / "store").mkdir()
    rendered = render(tmp_path / "store", tmp_path / "out")
    assert "No results have been submitted yet." in rendered.markdown.read_text()


def test_cli_submit_and_leaderboard(tmp_path, xtb_split_hash, capsys):
    from equibench_leaderboard.cli import register

    parser = argparse.ArgumentParser(prog="equibench")
    register(parser.add_subparsers(dest="command", required=True))

    def main(argv):
        args = parser.parse_args(argv)
        return args.func(args)

    store, out = tmp_path / "store", tmp_path / "out"
    good = write(make_results(split_hash=xtb_split_hash), tmp_path / "good.json")
    assert main(["submit", str(good), "--store", str(store), "--dry-run"]) == 0
    assert not store.exists()
    assert main(["submit", str(good), "--store", str(store)]) == 0
    assert "accepted: stored as" in capsys.readouterr().out
    assert main(["submit", str(good), "--store", str(store)]) == 1
    assert "refused:" in capsys.readouterr().err
    assert main(["leaderboard", "--store", str(store), "--out", str(out)]) == 0
    assert (out / "LEADERBOARD.md").is_file() and (out / "site" / "index.html").is_file()
    assert main(["leaderboard", "--store", str(tmp_path / "missing"), "--out", str(out)]) == 2


def test_equibench_cli_has_the_commands_when_the_entry_point_is_installed():
    from importlib.metadata import entry_points

    if "leaderboard" not in {ep.name for ep in entry_points(group="equibench.commands")}:
        pytest.skip("equibench_leaderboard is not registered in the equibench.commands entry-point group")
    from equibench.cli import build_parser

    args = build_parser().parse_args(["leaderboard", "--store", "x"])
    assert args.func.__module__ == "equibench_leaderboard.cli"


def test_copy_into_readme_replaces_only_the_marked_block(tmp_path):
    from equibench_leaderboard.render import copy_into_readme

    markdown = tmp_path / "LEADERBOARD.md"
    markdown.write_text("# title\n\n## md17\n\n| a |\n|---|\n| 1 |\n")
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- s -->\nold table\n<!-- e -->\noutro\n")
    copy_into_readme(markdown, readme, "<!-- s -->", "<!-- e -->")
    assert readme.read_text() == "intro\n<!-- s -->\n### md17\n\n| a |\n|---|\n| 1 |\n<!-- e -->\noutro\n"
    with pytest.raises(ValueError, match="marker"):
        copy_into_readme(markdown, readme, "<!-- x -->", "<!-- e -->")
