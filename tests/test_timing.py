"""Timing: CPU wall clock, and the CUDA-event path (exercised on CPU with a stand-in event, and for
real on a GPU with the `gpu` marker)."""
import time

import pytest
import torch

from equibench.timing import Stopwatch, median_after_warmup, peak_memory


def test_cpu_stopwatch_measures_wall_time():
    with Stopwatch("cpu") as watch:
        time.sleep(0.05)
    assert 0.04 < watch.seconds < 0.5


def test_cuda_path_uses_synchronized_events(monkeypatch):
    calls = []

    class FakeEvent:
        def __init__(self, enable_timing):
            assert enable_timing
            self.name = f"event{len(calls)}"

        def record(self):
            calls.append(("record", self.name))

        def synchronize(self):
            calls.append(("synchronize", self.name))

        def elapsed_time(self, end):
            calls.append(("elapsed", self.name, end.name))
            return 250.0  # milliseconds

    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    with Stopwatch("cuda:0") as watch:
        pass
    assert watch.seconds == 0.25
    # the end event is recorded, then waited for, before the time is read
    assert [c[0] for c in calls] == ["record", "record", "synchronize", "elapsed"]


def test_median_after_warmup():
    assert median_after_warmup([9.0, 9.0, 1.0, 2.0, 3.0], warmup=2) == 2.0
    assert median_after_warmup([1.0], warmup=5) is None


def test_peak_memory_on_cpu_is_process_rss():
    value, kind = peak_memory(torch.device("cpu"))
    assert kind == "process_peak_rss" and value > 10 * 2**20


@pytest.mark.gpu
def test_runner_on_cuda(tmp_path, rmd17_dir, example_model):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from equibench.runner import RunConfig, run

    results = run(RunConfig(task="md17", model=example_model, dataset="rmd17-ethanol", data_dir=str(rmd17_dir),
                            steps=12, batch_size=4, out=str(tmp_path), progress=False, device="cuda",
                            eval_steps=[0, 12]))
    assert results["environment"]["device"] == "cuda"
    assert results["cost"]["peak_memory_kind"] == "cuda_max_allocated"
