"""Kernel timing on the GPU: CUDA events, L2 flushed before every launch, median of many runs."""

from __future__ import annotations

import statistics

import torch

L2_FLUSH_BYTES = 256 << 20  # H200 L2 is 60 MB; writing 256 MB evicts it entirely
_HOST_COVER_CYCLES = 300_000  # ~150 us at 1.98 GHz


class L2Flusher:
    """Writes a buffer larger than L2 so the next kernel reads its inputs from HBM."""

    def __init__(self, device=None):
        self.buffer = torch.empty(L2_FLUSH_BYTES // 4, dtype=torch.int32, device=device)

    def __call__(self):
        self.buffer.zero_()


def time_cuda(fn, iters: int = 30, warmup: int = 3, flush: L2Flusher | None = None) -> float:
    """Median time in microseconds of ``fn()`` on the current stream.

    Each launch is preceded by an L2 flush and a ~150 us device-side sleep (both outside the timed
    region). NOTES: without the sleep, a call whose host cost exceeds the flush's ~60 us leaves the
    GPU idle between the start event and the kernel, and the events measure the host instead.
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
