"""Benchmark: cute-gemm next to cuBLAS (blockwise and per-tensor FP8) and bf16 torch.matmul.

    python -m cute_gemm.bench                       # the DeepSeek-V3 suite (18 shapes)
    python -m cute_gemm.bench --m 4096 --n 7168 --k 16384
    python -m cute_gemm.bench --json out.json --png out.png [--grouped]   # + the MoE suites
    python -m cute_gemm.bench --plot out.json --png out.png   # chart from saved results, no GPU

Every peer runs in the same process on the same inputs; kernel time is the median over calls of the
profiler's device time of the call's kernels, with L2 flushed before each launch. TFLOPS = 2mnk / t; GB/s counts A + B + scales + D once.
Every result is checked with ``calc_diff`` against our fp32 reference of the dequantised inputs
(cute-gemm, cuBLAS blockwise) or the unquantised product (per-tensor FP8, bf16).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import subprocess
import sys

DEEPSEEK_V3_NK = ((2112, 7168), (24576, 1536), (32768, 512), (7168, 16384), (4096, 7168), (7168, 2048))
DEEPSEEK_V3_M = (64, 128, 4096)
PEERS = ("cute_gemm", "cublas_blockwise", "cublas_per_tensor", "torch_bf16")


def suite_shapes():
    return [(m, n, k) for m in DEEPSEEK_V3_M for n, k in DEEPSEEK_V3_NK]


def _progress(i, total, text):
    bar = "#" * (20 * i // total)
    print(f"\r[{bar:<20}] {i}/{total} {text:<40}", end="", file=sys.stderr, flush=True)
    if i == total:
        print(file=sys.stderr)


def bench_shape(m, n, k, iters=30):
    """Time every peer on one shape; returns a dict of results."""
    import torch

    import cute_gemm
    from cute_gemm import peers
    from cute_gemm.quant import calc_diff
    from cute_gemm.testing import make_fp8_gemm_problem
    from cute_gemm.timing import time_kernels

    p = make_fp8_gemm_problem(m, n, k)
    dequant_ref = p.dequantized_reference()
    exact_ref = p.unquantized_reference()
    flops = 2 * m * n * k
    nbytes = m * k + n * k + 4 * (p.sfa.numel() + p.sfb.numel()) + 2 * m * n
    row = {"m": m, "n": n, "k": k, "peers": {}}

    def record(name, fn, ref):
        if fn is None:
            row["peers"][name] = None
            return
        out = fn()
        diff = calc_diff(out, ref)
        us = time_kernels(fn, iters=iters)
        row["peers"][name] = {
            "us": us, "tflops": flops / us / 1e6,
            "gbps": nbytes / us / 1e3, "calc_diff": diff,
        }

    record("cute_gemm", lambda: cute_gemm.fp8_gemm_nt((p.a, p.sfa), (p.b, p.sfb), p.d), dequant_ref)
    row["config"] = cute_gemm.heuristics.choose_config(m, n, k, cute_gemm.get_num_sms()).describe()
    record("cublas_blockwise", peers.cublas_blockwise(p.a, p.sfa, p.b, p.sfb), dequant_ref)
    (a_pt, sa), (b_pt, sb) = peers.per_tensor_cast(p.x), peers.per_tensor_cast(p.y)
    record("cublas_per_tensor", peers.cublas_per_tensor(a_pt, sa, b_pt, sb), exact_ref)
    record("torch_bf16", peers.torch_bf16(p.x, p.y), exact_ref)
    ours = row["peers"]["cute_gemm"]
    row["speedup"] = {
        name: (r["us"] / ours["us"] if r else None) for name, r in row["peers"].items() if name != "cute_gemm"
    }
    return row


CONTIGUOUS_SHAPES = ((4, 8192, 4096, 7168), (4, 8192, 7168, 2048), (8, 4096, 4096, 7168), (8, 4096, 7168, 2048))
MASKED_SHAPES = ((1, 1024, 4096, 7168), (1, 1024, 7168, 2048), (2, 512, 4096, 7168), (2, 512, 7168, 2048),
                 (4, 256, 4096, 7168), (4, 256, 7168, 2048))


def bench_grouped(kind: str, groups: int, m: int, n: int, k: int, iters: int = 30):
    """Time a grouped GEMM (every expert with ``m`` rows) next to a loop of per-expert cuBLAS calls."""
    import cute_gemm
    from cute_gemm import peers
    from cute_gemm.quant import calc_diff
    from cute_gemm.testing import make_contiguous_problem, make_masked_problem
    from cute_gemm.timing import time_kernels
    import torch

    if kind == "contiguous":
        p = make_contiguous_problem([m] * groups, n, k)
        run = lambda: cute_gemm.m_grouped_fp8_gemm_nt_contiguous((p.a, p.sfa), (p.b, p.sfb), p.d, p.group_info)  # noqa: E731
        expert_out = lambda g: p.d[p.rows[g][0]:p.rows[g][0] + m]  # noqa: E731
        expert_x = lambda g: p.x[p.rows[g][0]:p.rows[g][0] + m]  # noqa: E731
    else:
        p = make_masked_problem([m] * groups, m, n, k)
        run = lambda: cute_gemm.m_grouped_fp8_gemm_nt_masked((p.a, p.sfa), (p.b, p.sfb), p.d, p.group_info, m)  # noqa: E731
        expert_out = lambda g: p.d[g]  # noqa: E731
        expert_x = lambda g: p.x[g]  # noqa: E731
    run()
    diff = max(calc_diff(expert_out(g), p.expert_reference(g)) for g in range(groups))
    flops = 2 * groups * m * n * k
    nbytes = groups * (m * k + n * k + 2 * m * n) + 4 * (p.sfa.numel() + p.sfb.numel())
    us = time_kernels(run, iters=iters)
    casts = [(peers.per_tensor_cast(expert_x(g)), peers.per_tensor_cast(p.y[g])) for g in range(groups)]
    loops = [peers.cublas_per_tensor(a, sa, b, sb) for (a, sa), (b, sb) in casts]
    loop_us = time_kernels(lambda: [f() for f in loops], iters=iters)
    loop_diff = max(calc_diff(f(), p.expert_reference(g, dequantized=False)) for g, f in enumerate(loops))
    row = {
        "kind": kind, "groups": groups, "m": m, "n": n, "k": k,
        "us": us, "tflops": flops / us / 1e6, "gbps": nbytes / us / 1e3, "calc_diff": diff,
        "cublas_loop_us": loop_us, "cublas_loop_tflops": flops / loop_us / 1e6,
        "cublas_loop_calc_diff": loop_diff, "speedup": loop_us / us,
        "torch_grouped_us": None, "torch_grouped_calc_diff": None, "torch_grouped_speedup": None,
    }
    # torch's grouped FP8 GEMM (row-wise scales) over the same experts, where the torch has it.
    xs = p.x if kind == "masked" else torch.cat([expert_x(g) for g in range(groups)])
    (a_rw, sa_rw), (b_rw, sb_rw) = peers.rowwise_cast(xs), peers.rowwise_cast(p.y)
    offs = None if kind == "masked" else torch.arange(1, groups + 1, device=xs.device, dtype=torch.int32) * m
    grouped_mm = peers.torch_grouped_rowwise(a_rw, sa_rw, b_rw, sb_rw, offs)
    if grouped_mm is not None:
        out = grouped_mm().view(groups, m, n)
        row["torch_grouped_us"] = time_kernels(grouped_mm, iters=iters)
        row["torch_grouped_calc_diff"] = max(
            calc_diff(out[g], p.expert_reference(g, dequantized=False)) for g in range(groups)
        )
        row["torch_grouped_speedup"] = row["torch_grouped_us"] / us
    return row


def bench_host_time(m: int = 64, n: int = 7168, k: int = 7168, calls: int = 200, rounds: int = 15):
    """Host time of one warm eager ``fp8_gemm_nt`` call next to ``x.add_(1)``, in the same process.

    Median over ``rounds`` of the wall time of ``calls`` back-to-back launches (no sync inside a
    round; the kernels are shorter than the host work, so the launch queue never fills). Also
    checks that the call captures in a CUDA graph and replays to the same result.
    """
    import time

    import torch

    import cute_gemm
    from cute_gemm.testing import make_fp8_gemm_problem

    p = make_fp8_gemm_problem(m, n, k)
    x = torch.zeros(16, device="cuda")
    gemm = lambda: cute_gemm.fp8_gemm_nt((p.a, p.sfa), (p.b, p.sfb), p.d)  # noqa: E731
    add = lambda: x.add_(1)  # noqa: E731

    def per_call_us(fn):
        for _ in range(20):
            fn()
        torch.cuda.synchronize()
        samples = []
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            samples.append((time.perf_counter() - start) / calls * 1e6)
            torch.cuda.synchronize()
        return statistics.median(samples)

    gemm_us, add_us = per_call_us(gemm), per_call_us(add)
    eager = p.d.clone()
    graph = torch.cuda.CUDAGraph()
    p.d.zero_()
    with torch.cuda.graph(graph):
        gemm()
    graph.replay()
    torch.cuda.synchronize()
    return {"m": m, "n": n, "k": k, "fp8_gemm_nt_us": gemm_us, "add_us": add_us,
            "ratio": gemm_us / add_us, "cuda_graph_replay_matches": bool(torch.equal(eager, p.d))}


def format_host_time(h) -> str:
    return (f"host time of a warm eager call ({h['m']}x{h['n']}x{h['k']}): fp8_gemm_nt {h['fp8_gemm_nt_us']:.1f} us, "
            f"x.add_(1) {h['add_us']:.1f} us, ratio {h['ratio']:.2f}; CUDA-graph replay matches eager: "
            f"{h['cuda_graph_replay_matches']}")


def format_grouped_table(rows) -> str:
    lines = ["| kind | G | M per expert | N | K | cute-gemm us | TFLOPS | GB/s | diff | "
             "cuBLAS per-tensor loop us | TFLOPS | x | torch grouped row-wise us | x |", "|" + "---|" * 14]
    for r in rows:
        if r.get("torch_grouped_us"):
            torch_cells = f"{r['torch_grouped_us']:.1f} | {r['torch_grouped_speedup']:.2f}"
        else:
            torch_cells = "n/a | n/a"
        lines.append(
            f"| {r['kind']} | {r['groups']} | {r['m']} | {r['n']} | {r['k']} | {r['us']:.1f} | "
            f"{r['tflops']:.0f} | {r['gbps']:.0f} | {r['calc_diff']:.1e} | {r['cublas_loop_us']:.1f} | "
            f"{r['cublas_loop_tflops']:.0f} | {r['speedup']:.2f} | {torch_cells} |"
        )
    return "\n".join(lines)


def environment():
    import torch

    commit = os.environ.get("CUTE_GEMM_COMMIT")
    if commit is None:
        try:
            commit = subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
            ).stdout.strip()
        except Exception:
            commit = "unknown"
    env = {
        "date": datetime.date.today().isoformat(),
        "commit": commit,
        "torch": torch.__version__,
    }
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name()
        try:
            env["driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, check=True,
            ).stdout.strip()
        except Exception:
            env["driver"] = "unknown"
    return env


def geomean(values):
    values = [v for v in values if v]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def format_table(results) -> str:
    head = (
        "| M | N | K | config | cute-gemm us | TFLOPS | GB/s | diff | cuBLAS blockwise us | x | "
        "cuBLAS per-tensor us | x | bf16 us | x |"
    )
    lines = [head, "|" + "---|" * 14]
    for r in results:
        ours = r["peers"]["cute_gemm"]
        cells = [str(r["m"]), str(r["n"]), str(r["k"]), r["config"].split(" raster")[0],
                 f"{ours['us']:.1f}", f"{ours['tflops']:.0f}", f"{ours['gbps']:.0f}", f"{ours['calc_diff']:.1e}"]
        for name in PEERS[1:]:
            peer = r["peers"][name]
            cells += [f"{peer['us']:.1f}", f"{r['speedup'][name]:.2f}"] if peer else ["n/a", "n/a"]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for name in PEERS[1:]:
        lines.append(f"geometric-mean speedup over {name}: {geomean(r['speedup'][name] for r in results):.2f}x")
    return "\n".join(lines)


def plot(results, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no PNG written (pip install matplotlib)", file=sys.stderr)
        return
    labels = [f"{r['m']}x{r['n']}x{r['k']}" for r in results]
    width = 0.2
    fig, ax = plt.subplots(figsize=(max(8, len(results) * 0.9), 5))
    for i, name in enumerate(PEERS):
        values = [(r["peers"][name] or {}).get("tflops", 0) for r in results]
        ax.bar([x + (i - 1.5) * width for x in range(len(results))], values, width, label=name)
    ax.set_xticks(range(len(results)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("TFLOPS")
    ax.legend()
    ax.set_title("FP8 GEMM, 1x128 / 128x128 scaling (per-tensor and bf16 for reference)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cute_gemm.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--m", type=int, nargs="*")
    parser.add_argument("--n", type=int, nargs="*")
    parser.add_argument("--k", type=int, nargs="*")
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--json", help="write results and environment here")
    parser.add_argument("--png", help="write a TFLOPS bar chart here")
    parser.add_argument("--plot", help="read results from this JSON instead of running (no GPU needed)")
    parser.add_argument("--grouped", action="store_true", help="also run the MoE grouped suites")
    parser.add_argument("--no-host-time", action="store_true", help="skip the host-overhead measurement")
    args = parser.parse_args(argv)

    if args.plot:
        with open(args.plot) as f:
            saved = json.load(f)
        print(format_table(saved["results"]))
        if saved.get("grouped"):
            print()
            print(format_grouped_table(saved["grouped"]))
        if saved.get("host"):
            print()
            print(format_host_time(saved["host"]))
        if args.png:
            plot(saved["results"], args.png)
        return 0

    import torch

    if not torch.cuda.is_available():
        print("the benchmark needs a CUDA GPU (Hopper); `python -m cute_gemm demo` compiles without one")
        return 1
    torch.backends.cuda.matmul.allow_tf32 = False
    if args.m or args.n or args.k:
        if not (args.m and args.n and args.k):
            parser.error("--m, --n and --k go together")
        shapes = [(m, n, k) for m in args.m for n in args.n for k in args.k]
    else:
        shapes = suite_shapes()
    results = []
    for i, (m, n, k) in enumerate(shapes):
        _progress(i, len(shapes), f"{m}x{n}x{k}")
        results.append(bench_shape(m, n, k, args.iters))
    _progress(len(shapes), len(shapes), "done")
    grouped = []
    if args.grouped:
        suite = [("contiguous", *s) for s in CONTIGUOUS_SHAPES] + [("masked", *s) for s in MASKED_SHAPES]
        for i, shape in enumerate(suite):
            _progress(i, len(suite), " ".join(map(str, shape)))
            grouped.append(bench_grouped(*shape, iters=args.iters))
        _progress(len(suite), len(suite), "done")
    host = None if args.no_host_time else bench_host_time()
    env = environment()
    print(f"{env.get('gpu')} driver {env.get('driver')} torch {env['torch']} commit {env['commit']} {env['date']}")
    print(format_table(results))
    if grouped:
        print()
        print(format_grouped_table(grouped))
    if host:
        print()
        print(format_host_time(host))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "results": results, "grouped": grouped, "host": host}, f, indent=1)
    if args.png:
        plot(results, args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
