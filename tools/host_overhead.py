"""Host overhead of one warm eager ``cute_gemm.fp8_gemm_nt`` call, stage by stage.

    python tools/host_overhead.py                 # CPU: the Python part alone (no GPU needed)
    python tools/host_overhead.py --cuda          # GPU: the whole call, the Python part, the launch
    python tools/host_overhead.py --m 64 --n 7168 --k 7168 --number 100000

CPU mode (the default without a GPU) times the Python that runs before the launch. The tensors
live on the CPU, so for the measurement only ``api._check_same_device`` (run once, when a layout's
plan is created) is a no-op and ``jit.get_fp8_gemm`` returns a stub that does nothing in place of
the compiled kernel; both are restored, and the plan caches emptied, before returning. Stages:

- ``fp8_gemm_nt (fast path)``: the whole warm call, as the user calls it, with the stub launch;
- ``fast path: key``: unpacking the pairs and building the layout key (the tensor attributes);
- ``fast path: lookup``: the dict lookup of a prepared key and unpacking the launcher;
- ``fast path: pointers``: the five ``data_ptr()`` reads;
- ``fast path: pointer checks``: 16-byte alignment and ``d`` overlapping an input;
- ``launch stub``: calling the stub with the six arguments (what remains is the TVM-FFI call);
- ``checked path``: the same warm call through ``api._fp8_gemm_nt_checked`` (what every call ran
  before the fast path: plan-cache lookup keyed by exact strides, per-call pointer checks);
- ``x.add_(1) (CPU)``: a trivial torch op for scale (on the GPU it costs more: a kernel launch).

GPU mode (``--cuda``) times, in the same process and as ``cute_gemm.bench.bench_host_time`` does
(median over rounds of back-to-back calls, synchronised between rounds): the whole warm call,
``x.add_(1)`` on the GPU, the fast path with the launch stubbed (the Python part) and the compiled
kernel called directly (the launch alone), and prints the ratio to ``x.add_(1)`` (issue #3 target:
at most 1.5).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

import cute_gemm  # noqa: E402
from cute_gemm import api, device, jit  # noqa: E402


def _time_us(fn, number: int, repeat: int) -> float:
    """Best of ``repeat`` means over ``number`` calls, in microseconds (CPU timing)."""
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def cpu_problem(m: int, n: int, k: int):
    kb, nb = -(-k // 128), -(-n // 128)
    a = torch.zeros(m, k, dtype=torch.float8_e4m3fn)
    b = torch.zeros(n, k, dtype=torch.float8_e4m3fn)
    sfa = torch.zeros(kb, -(-m // 4) * 4)[:, :m].t()  # M-major, TMA-aligned, as the helpers make it
    sfb = torch.zeros(nb, kb)
    d = torch.empty(m, n, dtype=torch.bfloat16)
    return a, sfa, b, sfb, d


_CACHES = ("_dense_plans", "_launchers", "_recent_launchers")


class stubbed_launch:
    """Context: CPU tensors pass the device check and the "kernel" is a stub counting its calls.

    The plan caches start empty and are restored on exit (no CPU plan outlives the measurement).
    """

    def __init__(self):
        self.launches = 0

    def _stub(self, *args):
        self.launches += 1

    def __enter__(self):
        self._saved = (api._check_same_device, jit.get_fp8_gemm,
                       [dict(getattr(api, name)) for name in _CACHES])
        for name in _CACHES:
            getattr(api, name).clear()
        api._check_same_device = lambda tensors: None
        jit.get_fp8_gemm = lambda config: self._stub
        return self

    def __exit__(self, *exc):
        api._check_same_device, jit.get_fp8_gemm, saved = self._saved
        for name, contents in zip(_CACHES, saved):
            getattr(api, name).clear()
            getattr(api, name).update(contents)


def _set_launcher(key, launcher):
    api._launchers[key] = launcher
    api._recent_launchers[key[0]] = launcher


def cpu_stages(m: int, n: int, k: int, number: int = 100_000, repeat: int = 7) -> dict[str, float]:
    """Microseconds per stage of a warm call, CPU tensors, stub launch (see the module doc)."""
    a, sfa, b, sfb, d = cpu_problem(m, n, k)
    pa, pb = (a, sfa), (b, sfb)
    gemm = cute_gemm.fp8_gemm_nt
    x = torch.zeros(16)
    with stubbed_launch() as stub:
        gemm(pa, pb, d)
        key = api._launch_key(pa, pb, d, None)
        assert key in api._launchers, "the first call did not prepare the fast path"
        checked = api._fp8_gemm_nt_checked
        calls = []
        api._fp8_gemm_nt_checked = lambda *args: calls.append(args)
        try:
            gemm(pa, pb, d)
        finally:
            api._fp8_gemm_nt_checked = checked
        assert not calls and stub.launches == 2, "the warm call did not take the fast path"
        shapes, layout = key
        _, fn, num_sms, span_a, span_sfa, span_b, span_sfb, span_d = api._launchers[key]
        recent = api._recent_launchers
        ptrs = a.data_ptr(), sfa.data_ptr(), b.data_ptr(), sfb.data_ptr(), d.data_ptr()

        def key_stage():  # the expression of fp8_gemm_nt
            (x_, sx), (y, sy) = pa, pb
            layout = (
                pa.__class__, pb.__class__,
                x_.__class__, x_.is_contiguous() or x_.stride(), x_.dtype, x_.device,
                sx.__class__, sx.shape, sx.stride(), sx.dtype, sx.device,
                y.__class__, y.is_contiguous() or y.stride(), y.dtype, y.device,
                sy.__class__, sy.shape, sy.is_contiguous() or sy.stride(), sy.dtype, sy.device,
                d.__class__, d.shape, d.is_contiguous() or d.stride(), d.dtype, d.device,
                None, device._num_sms_override,
            )
            return (x_.shape, y.shape), layout

        assert key_stage() == key

        def lookup_stage():
            launcher = recent[shapes]
            if launcher[0] != layout:
                raise AssertionError
            _, fn, num_sms, span_a, span_sfa, span_b, span_sfb, span_d = launcher

        def pointer_stage():
            return a.data_ptr(), sfa.data_ptr(), b.data_ptr(), sfb.data_ptr(), d.data_ptr()

        def pointer_checks_stage():
            p_a, p_sfa, p_b, p_sfb, p_d = ptrs
            end_d = p_d + span_d
            return (
                (p_a | p_sfa | p_b | p_d) & 15
                or (p_a < end_d and p_d < p_a + span_a)
                or (p_sfa < end_d and p_d < p_sfa + span_sfa)
                or (p_b < end_d and p_d < p_b + span_b)
                or (p_sfb < end_d and p_d < p_sfb + span_sfb)
            )

        assert not pointer_checks_stage()
        stages = {
            "fp8_gemm_nt (fast path)": _time_us(lambda: gemm(pa, pb, d), number, repeat),
            "fast path: key (tensor attributes)": _time_us(key_stage, number, repeat),
            "fast path: lookup + layout compare": _time_us(lookup_stage, number, repeat),
            "fast path: pointers": _time_us(pointer_stage, number, repeat),
            "fast path: pointer checks": _time_us(pointer_checks_stage, number, repeat),
            "launch stub": _time_us(lambda: fn(a, b, d, sfa, sfb, num_sms), number, repeat),
            "checked path (plan cached; + sfa check, registration)": _time_us(
                lambda: checked(pa, pb, d, None), number, repeat),
            "x.add_(1) (CPU)": _time_us(lambda: x.add_(1), number, repeat),
            "empty lambda (timing floor, not subtracted)": _time_us(lambda: None, number, repeat),
        }
    return stages


def cuda_host_time(m: int, n: int, k: int, calls: int = 200, rounds: int = 15) -> dict[str, float]:
    """Host microseconds per warm call on the GPU: whole call, Python part, launch, x.add_(1)."""
    import time

    from cute_gemm.testing import make_fp8_gemm_problem

    p = make_fp8_gemm_problem(m, n, k)
    pa, pb, d = (p.a, p.sfa), (p.b, p.sfb), p.d
    x = torch.zeros(16, device="cuda")
    gemm = cute_gemm.fp8_gemm_nt
    gemm(pa, pb, d)
    key = api._launch_key(pa, pb, d, None)
    assert key in api._launchers, "no fast-path launcher after a warm call"
    launcher = api._launchers[key]
    fn, num_sms = launcher[1], launcher[2]

    def per_call_us(call):
        for _ in range(20):
            call()
        torch.cuda.synchronize()
        samples = []
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(calls):
                call()
            samples.append((time.perf_counter() - start) / calls * 1e6)
            torch.cuda.synchronize()
        return statistics.median(samples)

    out = {
        "fp8_gemm_nt": per_call_us(lambda: gemm(pa, pb, d)),
        "x.add_(1)": per_call_us(lambda: x.add_(1)),
        "launch alone (compiled kernel called directly)": per_call_us(
            lambda: fn(p.a, p.b, d, p.sfa, p.sfb, num_sms)),
        "checked path (plan cached)": per_call_us(
            lambda: api._fp8_gemm_nt_checked(pa, pb, d, None)),
    }
    _set_launcher(key, launcher[:1] + (lambda *args: None,) + launcher[2:])
    try:
        out["Python part (fast path, launch stubbed)"] = per_call_us(lambda: gemm(pa, pb, d))
    finally:
        _set_launcher(key, launcher)
    out["ratio fp8_gemm_nt / x.add_(1)"] = out["fp8_gemm_nt"] / out["x.add_(1)"]
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, default=64)
    parser.add_argument("--n", type=int, default=7168)
    parser.add_argument("--k", type=int, default=7168)
    parser.add_argument("--number", type=int, default=100_000, help="calls per timing (CPU mode)")
    parser.add_argument("--cuda", action="store_true", help="time the real call on the GPU")
    args = parser.parse_args(argv)
    if args.cuda:
        result = cuda_host_time(args.m, args.n, args.k)
        unit = "us per call (host, median of rounds)"
    else:
        result = cpu_stages(args.m, args.n, args.k, number=args.number)
        unit = "us per call (CPU, launch stubbed, best of 7)"
    print(f"m={args.m} n={args.n} k={args.k}: {unit}")
    for name, value in result.items():
        print(f"  {name:48s} {value:7.3f}")


if __name__ == "__main__":
    main()
