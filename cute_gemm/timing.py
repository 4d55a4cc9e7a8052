"""Kernel timing on the GPU, L2 flushed before every launch, medians of many runs.

:func:`time_kernels` takes the torch profiler's device time of the kernels a call launches
(DeepGEMM's method), so host overhead and launch gaps are excluded by construction.

NOTES: CUDA events were tried first and dropped: on the H200 lease they read 52-108 us around
kernels the profiler timed at 8-47 us, run to run, even with a device-side sleep covering the
host's enqueue time (docs/notes.md).
"""

from __future__ import annotations

import statistics

import torch

L2_FLUSH_BYTES = 256 << 20  # H200 L2 is 60 MB; writing 256 MB evicts it entirely
_NOT_TIMED = ("elementwise", "fill", "sleep", "Memset", "memset")


class L2Flusher:
    """Writes a buffer larger than L2 so the next kernel reads its inputs from HBM."""

    def __init__(self, device=None):
        self.buffer = torch.empty(L2_FLUSH_BYTES // 4, dtype=torch.int32, device=device)

    def __call__(self):
        self.buffer.zero_()


def time_kernels(fn, iters: int = 30, warmup: int = 3, flush: L2Flusher | None = None) -> float:
    """Median over calls of the summed device time (us) of the kernels one ``fn()`` launches.

    The flush (and any fill/memset) kernels are excluded by name.
    """
    from torch.profiler import ProfilerActivity, profile

    flush = flush or L2Flusher()
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(iters):
            flush()
            fn()
        torch.cuda.synchronize()
    kernels = [
        e for e in prof.events()
        if e.device_type == torch.autograd.DeviceType.CUDA and not any(s in e.name for s in _NOT_TIMED)
    ]
    if not kernels or len(kernels) % iters:
        raise RuntimeError(f"expected a whole number of kernels per call, got {len(kernels)} for {iters} calls")
    per_call = len(kernels) // iters
    kernels.sort(key=lambda e: e.time_range.start)
    totals = [
        sum(e.device_time for e in kernels[i * per_call:(i + 1) * per_call]) for i in range(iters)
    ]
    return statistics.median(totals)
