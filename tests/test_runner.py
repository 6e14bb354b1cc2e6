"""The runner end to end on real rMD17 ethanol: results file, resume after interruption, and
clear errors for models that break the output contract."""
import json

import pytest
import torch

from equibench.contract import ModelOutputError
from equibench.results import read_results
from equibench.runner import RunConfig, RunError, Runner, log_spaced_steps, run


def _config(tmp_path, rmd17_dir, model, **overrides):
    base = dict(task="md17", model=model, dataset="rmd17-ethanol", data_dir=str(rmd17_dir), steps=12,
                batch_size=4, out=str(tmp_path), progress=False, eval_steps=[0, 6, 12])
    return RunConfig(**{**base, **overrides})


def test_log_spaced_steps():
    assert log_spaced_steps(1000) == [0, 10, 30, 100, 300, 1000]
    assert log_spaced_steps(3000) == [0, 10, 30, 100, 300, 1000, 3000]
    assert log_spaced_steps(50) == [0, 10, 30, 50]


def test_run_writes_valid_partial_results(tmp_path, rmd17_dir, example_model):
    results = run(_config(tmp_path, rmd17_dir, example_model))
    path = tmp_path / "md17_rmd17-ethanol_my_model_aug_seed0.json"
    assert read_results(path)["content_hash"] == results["content_hash"]
    assert [point["step"] for point in results["curve"]] == [0, 6, 12]
    assert results["curve"][-1]["train_seconds"] > results["curve"][1]["train_seconds"] > 0
    assert results["model"]["augmentation"] is True and results["model"]["equivariant"] is False
    assert results["status"]["complete"] is False and "below the task budget" in results["status"]["partial_reason"]
    assert set(results["final"]["metrics"]) >= {"energy_mae", "forces_mae", "loss"}
    assert results["final"]["decomposition"]["outputs"]["forces"]["k"] == 16
    assert results["cost"]["train_samples_per_second"] > 0


def test_resume_after_interrupt_matches_uninterrupted(tmp_path, rmd17_dir, example_model, monkeypatch):
    straight = run(_config(tmp_path / "a", rmd17_dir, example_model))

    original = Runner._train_step

    def interrupt_at_step_8(self):
        if self.step == 8:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(Runner, "_train_step", interrupt_at_step_8)
    with pytest.raises(RunError, match="--resume"):
        run(_config(tmp_path / "b", rmd17_dir, example_model))
    partial = json.loads((tmp_path / "b" / "md17_rmd17-ethanol_my_model_aug_seed0.json").read_text())
    assert partial["status"] == {"complete": False, "steps_done": 8, "partial_reason": "interrupted"}
    monkeypatch.setattr(Runner, "_train_step", original)
    with pytest.raises(RunError, match="already exists"):
        run(_config(tmp_path / "b", rmd17_dir, example_model))
    resumed = run(_config(tmp_path / "b", rmd17_dir, example_model, resume=True))
    assert [p["metrics"] for p in resumed["curve"]] == [p["metrics"] for p in straight["curve"]]
    assert resumed["final"]["metrics"] == straight["final"]["metrics"]


BAD_MODELS = {
    "wrong_shape": "return {'energy': torch.zeros(batch.num_graphs), 'forces': torch.zeros(batch.num_nodes, 2)}",
    "missing": "return {'energy': torch.zeros(batch.num_graphs)}",
    "nan": "return {'energy': torch.full((batch.num_graphs,), float('nan')), 'forces': torch.zeros(batch.num_nodes, 3)}",
}


@pytest.mark.parametrize("kind,message", [("wrong_shape", r"'forces' has shape \(18, 2\), expected \(18, 3\)"),
                                          ("missing", "missing 'forces'"),
                                          ("nan", "'energy' has 2 non-finite values")])
def test_bad_model_outputs_get_clear_errors(tmp_path, rmd17_dir, kind, message):
    path = tmp_path / f"{kind}.py"
    path.write_text("import torch\n\nclass M(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n"
                    "        self.w = torch.nn.Parameter(torch.zeros(1))\n\n    def forward(self, batch):\n"
                    f"        {BAD_MODELS[kind]}\n\n\ndef build_model(task):\n    return M()\n")
    with pytest.raises(ModelOutputError, match=message):
        Runner(_config(tmp_path, rmd17_dir, str(path), eval_steps=[0])).run()


def test_cuda_request_without_gpu_is_explained(tmp_path, rmd17_dir, example_model):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RunError, match="sees no GPU"):
        Runner(_config(tmp_path, rmd17_dir, example_model, device="cuda"))
