"""Kernel timing on the GPU, L2 flushed before every launch, medians of many runs.

Two clocks, both reported by the benchmark:

- :func:`time_kernels` (primary, DeepGEMM's method): the torch profiler's device time of the
  kernels a call launches, so host overhead and launch gaps are excluded by construction.
- :func:`time_cuda`: CUDA events around the call (a device-side sleep before the start event keeps
  the host's enqueue cost out of the window).
"""

from __future__ import annotations

import statistics

import torch

L2_FLUSH_BYTES = 256 << 20  # H200 L2 is 60 MB; writing 256 MB evicts it entirely
_HOST_COVER_CYCLES = 300_000  # ~150 us at 1.98 GHz
_NOT_TIMED = ("elementwise", "fill", "sleep", "Memset", "memset")


class L2Flusher:
    """Writes a buffer larger than L2 so the next kernel reads its inputs from HBM."""

    def __init__(self, device=None):
        self.buffer = torch.empty(L2_FLUSH_BYTES // 4, dtype=torch.int32, device=device)

    def __call__(self):
        self.buffer.zero_()


def time_cuda(fn, iters: int = 30, warmup: int = 3, flush: L2Flusher | None = None) -> float:
    """Median time in microseconds of ``fn()`` between CUDA events on the current stream.

    NOTES: without the sleep, a call whose host cost exceeds the flush's ~60 us leaves the GPU
    idle between the start event and the kernel, and the events measure the host instead (seen on
    the H200: 59 us by events for a 14 us kernel).
    """
    flush = flush or L2Flusher()
    for _ in range(warmup):
        fn()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
    for start, end in zip(starts, ends):
        flush()
        torch.cuda._sleep(_HOST_COVER_CYCLES)
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) * 1e3 for s, e in zip(starts, ends))


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
