"""Wall-clock timing that is honest on GPUs, and peak-memory readings.

On CUDA, kernels run asynchronously: a timer must synchronize, or it measures only the launch.
:class:`Stopwatch` uses CUDA events (synchronized at stop) on CUDA and ``perf_counter`` elsewhere.
"""
from __future__ import annotations

import resource
import statistics
import sys
import time

import torch


class Stopwatch:
    """Times one region: ``with Stopwatch(device) as sw: ...; sw.seconds``."""

    def __init__(self, device: torch.device | str):
        self.cuda = torch.device(device).type == "cuda"
        self.seconds = 0.0

    def __enter__(self) -> "Stopwatch":
        if self.cuda:
            self._start = torch.cuda.Event(enable_timing=True)
            self._end = torch.cuda.Event(enable_timing=True)
            self._start.record()
        else:
            self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        if self.cuda:
            self._end.record()
            self._end.synchronize()
            self.seconds = self._start.elapsed_time(self._end) / 1000.0
        else:
            self.seconds = time.perf_counter() - self._t0


def median_after_warmup(samples: list[float], warmup: int) -> float | None:
    """Median of ``samples`` after dropping the first ``warmup`` (None when nothing is left)."""
    kept = samples[warmup:]
    return statistics.median(kept) if kept else None


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> tuple[int | None, str]:
    """Peak memory in bytes and what was measured: CUDA allocator peak, or the process's peak RSS."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device)), "cuda_max_allocated"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024), "process_peak_rss"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"cpu: {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"
