"""Benchmark: cute-gemm next to cuBLAS (blockwise and per-tensor FP8) and bf16 torch.matmul.

    python -m cute_gemm.bench                       # the DeepSeek-V3 suite (18 shapes)
    python -m cute_gemm.bench --m 4096 --n 7168 --k 16384
    python -m cute_gemm.bench --json out.json --png out.png [--grouped] [--training]   # + MoE, training
    python -m cute_gemm.bench --training --no-dense --no-host-time   # the training suites alone
    python -m cute_gemm.bench --bf16 --no-dense --no-host-time       # the BF16 GEMMs, all four layouts
    python -m cute_gemm.bench --plot out.json --png out.png   # chart from saved results, no GPU

Every peer runs in the same process on the same inputs; kernel time is the median over calls of the
profiler's device time of the call's kernels, with L2 flushed before each launch. TFLOPS = 2mnk / t; GB/s counts A + B + scales + D once.
Every result is checked with ``calc_diff`` against our fp32 reference of the dequantised inputs
(cute-gemm, cuBLAS blockwise) or the unquantised product (per-tensor FP8, bf16).
A peer the installed torch lacks, or whose first call raises (cuBLAS refuses some shapes, output
dtypes and scale recipes), is reported n/a with the reason under its table.

The training suites (``--training``): weight gradients ``d += a @ b^T`` with 1x128 scales on both
operands and fp32 ``d`` accumulated in place (GB/s counts D read and written), dense and k-grouped
(MoE experts stacked along K); the peers compute the same product into a fresh fp32 output (cuBLAS
blockwise with 1x128 scales on both operands, per-tensor FP8) or bf16, k-grouped as a Python loop of
per-expert calls whose kernels are timed together.

The BF16 suite (``--bf16``): ``bf16_gemm_nt/nn/tn/tt`` (bf16 out) next to ``torch.matmul`` on the same
operand layouts (views, no copies), checked against the fp32 product of the bf16 inputs.
"""

from __future__ import annotations

import argparse
import collections
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


def _diff_to(ref):
    """A check of one output: its ``calc_diff`` against ``ref``."""
    from cute_gemm.quant import calc_diff

    return lambda out: calc_diff(out, ref)


def _max_diff_to(refs):
    """A check of several outputs (a list, or along a tensor's first dim) against ``refs`` in order:
    the worst ``calc_diff``."""
    from cute_gemm.quant import calc_diff

    return lambda outs: max(calc_diff(out, ref) for out, ref in zip(outs, refs, strict=True))


def _loop(calls):
    """One callable running ``calls`` in turn (a per-expert Python loop), or None if any is None."""
    if any(call is None for call in calls):
        return None
    return lambda: [call() for call in calls]


def _refusal(error: Exception) -> str:
    """Why a peer's call was refused, in one line: the error's type and message (its start)."""
    return f"{type(error).__name__}: {' '.join(str(error).split())[:240]}"


def _measure(fn, check, flops, nbytes, iters):
    """``check`` (``calc_diff``) of one call's output, then the kernel time of ``fn``: a result dict."""
    from cute_gemm.timing import time_kernels

    diff = check(fn())
    us = time_kernels(fn, iters=iters)
    return {"us": us, "tflops": flops / us / 1e6, "gbps": nbytes / us / 1e3, "calc_diff": diff}


def _checks(dequantized, exact):
    """The check of each call: ours and cuBLAS blockwise (our quantised inputs, our product) against
    the dequantised reference, the others against the unquantised product."""
    return {name: dequantized if name in ("cute_gemm", "cublas_blockwise") else exact for name in PEERS}


def _measure_all(calls, checks, flops, nbytes, iters):
    """Results of cute-gemm and every peer in ``calls`` (name -> callable, None if torch lacks it),
    each checked by ``checks[name]`` (from :func:`_checks`).

    Returns ``{"peers": name -> result or None, "speedup": peer us / cute-gemm us, "unavailable":
    name -> why}``: a peer that torch lacks or whose first call raises is None, the reason kept.
    """
    import torch

    results, unavailable = {}, {}
    for name, fn in calls.items():
        results[name] = None
        if fn is None:
            unavailable[name] = f"not in torch {torch.__version__}"
            continue
        if name != "cute_gemm":  # our own failures must fail the benchmark
            try:
                fn()
            except Exception as error:  # refused by torch/cuBLAS: n/a, with the reason
                unavailable[name] = _refusal(error)
                continue
        results[name] = _measure(fn, checks[name], flops, nbytes, iters)
    ours = results["cute_gemm"]["us"]
    speedup = {name: (r["us"] / ours if r else None) for name, r in results.items() if name != "cute_gemm"}
    return {"peers": results, "speedup": speedup, "unavailable": unavailable}


def _peer_calls(x, y, a, sfa, b, sfb, b_scale_rows, out_dtype):
    """The peers' calls on one problem (bf16 ``x [m, k]``, ``y [n, k]`` and our FP8 forms of them)."""
    from cute_gemm import peers

    (a_pt, sa), (b_pt, sb) = peers.per_tensor_cast(x), peers.per_tensor_cast(y)
    return {
        "cublas_blockwise": peers.cublas_blockwise(a, sfa, b, sfb, b_scale_rows, out_dtype),
        "cublas_per_tensor": peers.cublas_per_tensor(a_pt, sa, b_pt, sb, out_dtype),
        "torch_bf16": peers.torch_bf16(x, y),
    }


def _operand_bytes(p):
    """A + B (FP8) + their fp32 scales of a problem from :mod:`cute_gemm.testing`."""
    return p.a.numel() + p.b.numel() + 4 * (p.sfa.numel() + p.sfb.numel())


def bench_shape(m, n, k, iters=30):
    """Time every peer on one shape; returns a dict of results."""
    import torch

    import cute_gemm
    from cute_gemm.testing import make_fp8_gemm_problem

    p = make_fp8_gemm_problem(m, n, k)
    calls = {"cute_gemm": lambda: cute_gemm.fp8_gemm_nt((p.a, p.sfa), (p.b, p.sfb), p.d)}
    calls.update(_peer_calls(p.x, p.y, p.a, p.sfa, p.b, p.sfb, p.b_scale_rows, torch.bfloat16))
    row = {"m": m, "n": n, "k": k}
    checks = _checks(_diff_to(p.dequantized_reference()), _diff_to(p.unquantized_reference()))
    row.update(_measure_all(calls, checks, 2 * m * n * k, _operand_bytes(p) + 2 * m * n, iters))
    row["config"] = cute_gemm.heuristics.choose_config(m, n, k, cute_gemm.get_num_sms()).describe()
    return row


CONTIGUOUS_SHAPES = ((4, 8192, 4096, 7168), (4, 8192, 7168, 2048), (8, 4096, 4096, 7168), (8, 4096, 7168, 2048))
MASKED_SHAPES = ((1, 1024, 4096, 7168), (1, 1024, 7168, 2048), (2, 512, 4096, 7168), (2, 512, 7168, 2048),
                 (4, 256, 4096, 7168), (4, 256, 7168, 2048))
MASKED_DECODE_SHAPES = ((32, 32, 4096, 7168, 256),)
"""Masked decoding (G, rows per expert, N, K, M_max): every expert holds ``rows`` of its ``M_max``
slots (``expected_m = rows``), so the weights dominate the traffic: judged in GB/s."""


def bench_grouped(kind: str, groups: int, m: int, n: int, k: int, m_max: int | None = None, iters: int = 30):
    """Time a grouped GEMM (every expert with ``m`` rows; masked: of ``m_max`` slots, default ``m``)
    next to a loop of per-expert cuBLAS calls over the same rows."""
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
        p = make_masked_problem([m] * groups, m_max or m, n, k)
        run = lambda: cute_gemm.m_grouped_fp8_gemm_nt_masked((p.a, p.sfa), (p.b, p.sfb), p.d, p.group_info, m)  # noqa: E731
        expert_out = lambda g: p.d[g, :m]  # noqa: E731
        expert_x = lambda g: p.x[g, :m]  # noqa: E731
    run()
    diff = max(calc_diff(expert_out(g), p.expert_reference(g)) for g in range(groups))
    flops = 2 * groups * m * n * k
    nbytes = groups * (m * k + n * k + 2 * m * n) + 4 * (groups * m * p.sfa.shape[-1] + p.sfb.numel())  # valid rows' scales
    us = time_kernels(run, iters=iters)
    casts = [(peers.per_tensor_cast(expert_x(g)), peers.per_tensor_cast(p.y[g])) for g in range(groups)]
    loops = [peers.cublas_per_tensor(a, sa, b, sb) for (a, sa), (b, sb) in casts]
    loop_us = time_kernels(_loop(loops), iters=iters)
    loop_diff = max(calc_diff(f(), p.expert_reference(g, dequantized=False)) for g, f in enumerate(loops))
    row = {
        "kind": kind, "groups": groups, "m": m, "m_max": m_max or m, "n": n, "k": k,
        "us": us, "tflops": flops / us / 1e6, "gbps": nbytes / us / 1e3, "calc_diff": diff,
        "cublas_loop_us": loop_us, "cublas_loop_tflops": flops / loop_us / 1e6,
        "cublas_loop_calc_diff": loop_diff, "speedup": loop_us / us,
        "torch_grouped_us": None, "torch_grouped_calc_diff": None, "torch_grouped_speedup": None,
    }
    # torch's grouped FP8 GEMM (row-wise scales) over the same experts, where the torch has it.
    xs = p.x[:, :m] if kind == "masked" else torch.cat([expert_x(g) for g in range(groups)])
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


# Weight gradients (m = output features, n = input features, k = tokens) and their MoE form
# (G experts, m, n, expected tokens per expert).
WGRAD_SHAPES = ((7168, 2112, 4096), (1536, 24576, 4096), (512, 32768, 4096), (16384, 7168, 4096),
                (7168, 4096, 4096), (2048, 7168, 4096), (4096, 7168, 2048))
K_GROUPED_SHAPES = ((4, 4096, 7168, 8192), (4, 7168, 2048, 8192), (8, 4096, 7168, 4096), (8, 7168, 2048, 4096),
                    (16, 4096, 7168, 2048))


def bench_wgrad(m: int, n: int, k: int, iters: int = 30):
    """A dense weight gradient ``d += a @ b^T`` (1x128 scales on both operands, fp32 ``d`` accumulated
    in place) next to the peers computing ``a @ b^T`` into a fresh fp32 (bf16: bf16) output."""
    import torch

    import cute_gemm
    from cute_gemm.testing import make_fp8_gemm_problem

    p = make_fp8_gemm_problem(m, n, k, b_scale_rows=1, out_dtype=torch.float32)
    p.d.zero_()  # the first call's d is the product alone: that is what gets checked
    calls = {"cute_gemm": lambda: cute_gemm.fp8_gemm_nt((p.a, p.sfa), (p.b, p.sfb), p.d, c=p.d)}
    calls.update(_peer_calls(p.x, p.y, p.a, p.sfa, p.b, p.sfb, 1, torch.float32))
    row = {"kind": "wgrad", "groups": 1, "m": m, "n": n, "k": k}
    checks = _checks(_diff_to(p.dequantized_reference()), _diff_to(p.unquantized_reference()))
    row.update(_measure_all(calls, checks, 2 * m * n * k, _operand_bytes(p) + 8 * m * n, iters))  # D read + written
    return row


def _expert_peer_calls(p, g):
    """The peers' calls on expert ``g`` of a k-grouped problem (its K columns, packed; scales as views)."""
    import torch

    from layouts.tiles import SCALE_BLOCK

    k0, k1 = sum(p.ks[:g]), sum(p.ks[:g + 1])
    columns = lambda t: t[:, k0:k1].contiguous()  # noqa: E731
    b0, b1 = k0 // SCALE_BLOCK, k1 // SCALE_BLOCK
    return _peer_calls(columns(p.x), columns(p.y), columns(p.a), p.sfa[:, b0:b1], columns(p.b), p.sfb[:, b0:b1],
                       1, torch.float32)


BF16_SHAPES = ((4096, 7168, 2048), (4096, 2112, 7168), (8192, 8192, 8192), (128, 7168, 4096), (4096, 7168, 16384))
BF16_LAYOUTS = ("nt", "nn", "tn", "tt")


def bench_bf16(layout: str, m: int, n: int, k: int, iters: int = 30):
    """``bf16_gemm_<layout>`` (DeepGEMM's names: A ``n`` = ``[m, k]``, ``t`` = ``[k, m]``; B ``t`` =
    ``[n, k]``, ``n`` = ``[k, n]``) next to ``torch.matmul`` on the same stored operands."""
    import torch

    import cute_gemm

    x = torch.randn(m, k, device="cuda").bfloat16()
    y = torch.randn(n, k, device="cuda").bfloat16()
    check = _diff_to(x.float() @ y.float().t())
    a = x if layout[0] == "n" else x.t().contiguous()  # stored [m, k] or [k, m]
    b = y if layout[1] == "t" else y.t().contiguous()  # stored [n, k] or [k, n]
    a_mk = a if layout[0] == "n" else a.t()  # [m, k] views for torch.matmul
    b_kn = b.t() if layout[1] == "t" else b
    d = torch.empty(m, n, device="cuda", dtype=torch.bfloat16)
    flops, nbytes = 2 * m * n * k, 2 * (m * k + n * k + m * n)
    ours = _measure(lambda: getattr(cute_gemm, f"bf16_gemm_{layout}")(a, b, d), check, flops, nbytes, iters)
    peer = _measure(lambda: torch.matmul(a_mk, b_kn), check, flops, nbytes, iters)
    return {"kind": "bf16", "layout": layout, "m": m, "n": n, "k": k, **ours,
            "torch_us": peer["us"], "torch_tflops": peer["tflops"], "torch_calc_diff": peer["calc_diff"],
            "speedup": peer["us"] / ours["us"]}


def bench_k_grouped(groups: int, m: int, n: int, expected_k: int, iters: int = 30):
    """MoE weight gradients ``d[g] += a_g @ b_g^T`` (experts stacked along K, ``ks`` from
    :func:`random_expert_ks` with expert 1 empty) next to Python loops of per-expert peer calls.

    ``ks`` goes to the device once (a host list would add a copy to every call). ``k`` in the row is
    the tokens of all experts; GB/s counts D read and written for the experts with tokens.
    """
    import torch

    import cute_gemm
    from cute_gemm.testing import make_k_grouped_problem, random_expert_ks

    ks = random_expert_ks(groups, expected_k, seed=groups + m, empty=1)
    p = make_k_grouped_problem(ks, m, n)
    p.d.zero_()
    ks_device = torch.tensor(ks, dtype=torch.int32, device=p.d.device)
    experts = [g for g in range(groups) if ks[g]]
    calls = {"cute_gemm": lambda: cute_gemm.k_grouped_fp8_gemm_nt_contiguous(
        (p.a, p.sfa), (p.b, p.sfb), p.d, ks_device, c=p.d)}
    per_expert = [_expert_peer_calls(p, g) for g in experts]
    calls.update({name: _loop([c[name] for c in per_expert]) for name in per_expert[0]})
    dequantized = [p.expert_reference(g) for g in range(groups)]
    checks = _checks(_max_diff_to([dequantized[g] for g in experts]),
                     _max_diff_to([p.expert_reference(g, dequantized=False) for g in experts]))
    checks["cute_gemm"] = _max_diff_to(dequantized)  # every expert of d: the empty one must stay zero
    nbytes = _operand_bytes(p) + 8 * len(experts) * m * n
    row = {"kind": "k-grouped", "groups": groups, "m": m, "n": n, "k": sum(ks), "expected_k": expected_k, "ks": ks}
    row.update(_measure_all(calls, checks, 2 * m * n * sum(ks), nbytes, iters))
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


def _markdown(head, body) -> list:
    """A markdown table: the ``head`` labels, then one line per row of ``body`` cells."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return lines + ["| " + " | ".join(cells) + " |" for cells in body]


def format_grouped_table(rows) -> str:
    head = ["kind", "G", "M per expert", "N", "K", "cute-gemm us", "TFLOPS", "GB/s", "diff",
            "cuBLAS per-tensor loop us", "TFLOPS", "x", "torch grouped row-wise us", "x"]
    body = []
    for r in rows:
        torch_cells = [f"{r['torch_grouped_us']:.1f}", f"{r['torch_grouped_speedup']:.2f}"] \
            if r.get("torch_grouped_us") else ["n/a", "n/a"]
        rows_cell = str(r["m"]) if r.get("m_max", r["m"]) == r["m"] else f"{r['m']} of {r['m_max']}"
        body.append([r["kind"], str(r["groups"]), rows_cell, str(r["n"]), str(r["k"]), f"{r['us']:.1f}",
                     f"{r['tflops']:.0f}", f"{r['gbps']:.0f}", f"{r['calc_diff']:.1e}", f"{r['cublas_loop_us']:.1f}",
                     f"{r['cublas_loop_tflops']:.0f}", f"{r['speedup']:.2f}", *torch_cells])
    return "\n".join(_markdown(head, body))


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


PEER_LABELS = {"cublas_blockwise": "cuBLAS blockwise", "cublas_per_tensor": "cuBLAS per-tensor",
               "torch_bf16": "bf16"}
RESULT_HEAD = ["cute-gemm us", "TFLOPS", "GB/s", "diff"] + [
    label for name in PEERS[1:] for label in (f"{PEER_LABELS[name]} us", "x")]


def _result_cells(row) -> list:
    """The cells under :data:`RESULT_HEAD` of a row of :func:`_measure_all` results."""
    ours = row["peers"]["cute_gemm"]
    cells = [f"{ours['us']:.1f}", f"{ours['tflops']:.0f}", f"{ours['gbps']:.0f}", f"{ours['calc_diff']:.1e}"]
    for name in PEERS[1:]:
        peer = row["peers"][name]
        cells += [f"{peer['us']:.1f}", f"{row['speedup'][name]:.2f}"] if peer else ["n/a", "n/a"]
    return cells


def _summary_lines(rows) -> list:
    """Under a table of :func:`_result_cells` rows: the geometric-mean speedups, then why peers were n/a."""
    lines = [""]
    for name in PEERS[1:]:
        mean = geomean(r["speedup"][name] for r in rows)
        lines.append(f"geometric-mean speedup over {name}: " + ("n/a" if math.isnan(mean) else f"{mean:.2f}x"))
    for name in PEERS[1:]:
        reasons = collections.Counter(r["unavailable"][name] for r in rows if name in r.get("unavailable", {}))
        lines += [f"{name} n/a on {count} of {len(rows)} shapes: {reason}" for reason, count in reasons.items()]
    return lines


def format_table(results) -> str:
    body = [[str(r["m"]), str(r["n"]), str(r["k"]), _short_config(r["config"])] + _result_cells(r)
            for r in results]
    return "\n".join(_markdown(["M", "N", "K", "config"] + RESULT_HEAD, body) + _summary_lines(results))


TRAINING_NOTES = [
    "cute-gemm accumulates d += a @ b^T in fp32 (1x128 scales on both operands); the peers write a @ b^T",
    "to a fresh fp32 output (cuBLAS blockwise: 1x128 scales on both operands; bf16: a bf16 output).",
    "k-grouped: K = the tokens of all G experts; the peers are Python loops of per-expert calls (kernels summed).",
]


def _short_config(describe: str) -> str:
    """A config's ``describe()`` up to the cluster, its split-K if any, and whether N and K are
    compiled in (rasterisation left out)."""
    split = [word for word in describe.split() if word.startswith("split_k=")]
    static = ["N,K compiled in"] if describe.endswith("compiled in") else []
    return " ".join([describe.split(" raster")[0]] + split + static)


def format_training_table(rows) -> str:
    body = [[r["kind"], str(r["groups"]), str(r["m"]), str(r["n"]), str(r["k"])] + _result_cells(r) for r in rows]
    return "\n".join(_markdown(["kind", "G", "M", "N", "K"] + RESULT_HEAD, body) + _summary_lines(rows)
                     + TRAINING_NOTES)


def format_bf16_table(rows) -> str:
    head = ["layout", "M", "N", "K", "cute-gemm us", "TFLOPS", "diff", "torch.matmul us", "TFLOPS", "x"]
    body = [[r["layout"].upper(), str(r["m"]), str(r["n"]), str(r["k"]), f"{r['us']:.1f}", f"{r['tflops']:.0f}",
             f"{r['calc_diff']:.1e}", f"{r['torch_us']:.1f}", f"{r['torch_tflops']:.0f}", f"{r['speedup']:.2f}"]
            for r in rows]
    lines = [""]
    for layout in BF16_LAYOUTS:
        of_layout = [r["speedup"] for r in rows if r["layout"] == layout]
        if of_layout:
            lines.append(f"{layout.upper()}: geometric-mean speedup over torch.matmul {geomean(of_layout):.2f}x "
                         f"({min(of_layout):.2f}-{max(of_layout):.2f}x)")
    return "\n".join(_markdown(head, body) + lines)


def format_report(saved) -> str:
    """Every table of a run (what ``--json`` writes), blank-line separated."""
    parts = [
        saved.get("results") and format_table(saved["results"]),
        saved.get("grouped") and format_grouped_table(saved["grouped"]),
        saved.get("training") and format_training_table(saved["training"]),
        saved.get("bf16") and format_bf16_table(saved["bf16"]),
        saved.get("host") and format_host_time(saved["host"]),
    ]
    return "\n\n".join(part for part in parts if part)


def plot(results, path):
    if not results:
        print("no dense results (--no-dense): no PNG written", file=sys.stderr)
        return
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


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cute_gemm.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--m", type=int, nargs="*")
    parser.add_argument("--n", type=int, nargs="*")
    parser.add_argument("--k", type=int, nargs="*")
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--json", help="write results and environment here")
    parser.add_argument("--png", help="write a TFLOPS bar chart (of the dense suite) here")
    parser.add_argument("--plot", help="read results from this JSON instead of running (no GPU needed)")
    parser.add_argument("--grouped", action="store_true", help="also run the MoE grouped suites")
    parser.add_argument("--training", action="store_true",
                        help="also run the training suites: weight gradients d += a @ b^T (1x128 scales on both "
                             "operands, fp32 d), dense and k-grouped, next to cuBLAS and bf16")
    parser.add_argument("--bf16", action="store_true",
                        help="also run the BF16 GEMMs in all four layouts next to torch.matmul")
    parser.add_argument("--no-dense", action="store_true",
                        help="skip the dense DeepSeek-V3 suite (run only --grouped, --training and/or --bf16)")
    parser.add_argument("--no-host-time", action="store_true", help="skip the host-overhead measurement")
    args = parser.parse_args(argv)
    if (args.m or args.n or args.k) and not (args.m and args.n and args.k):
        parser.error("--m, --n and --k go together")
    if args.no_dense and (args.m or not (args.grouped or args.training or args.bf16)):
        parser.error("--no-dense goes with --grouped, --training or --bf16, without --m/--n/--k")
    return args


def _run_suite(cases, iters):
    """``bench(*shape, iters=iters)`` for each ``(bench, shape)`` of ``cases``, with a progress bar."""
    if not cases:  # a skipped suite
        return []
    rows = []
    for i, (bench, shape) in enumerate(cases):
        _progress(i, len(cases), " ".join(map(str, shape)))
        rows.append(bench(*shape, iters=iters))
    _progress(len(cases), len(cases), "done")
    return rows


def main(argv=None):
    args = parse_args(argv)
    if args.plot:
        with open(args.plot) as f:
            saved = json.load(f)
        print(format_report(saved))
        if args.png:
            plot(saved["results"], args.png)
        return 0

    import torch

    if not torch.cuda.is_available():
        print("the benchmark needs a CUDA GPU (Hopper); `python -m cute_gemm demo` compiles without one")
        return 1
    torch.backends.cuda.matmul.allow_tf32 = False
    if args.no_dense:
        shapes = []
    elif args.m:
        shapes = [(m, n, k) for m in args.m for n in args.n for k in args.k]
    else:
        shapes = suite_shapes()
    grouped = ([("contiguous", *s) for s in CONTIGUOUS_SHAPES] + [("masked", *s) for s in MASKED_SHAPES]
               + [("masked", *s) for s in MASKED_DECODE_SHAPES])
    training = [(bench_wgrad, s) for s in WGRAD_SHAPES] + [(bench_k_grouped, s) for s in K_GROUPED_SHAPES]
    saved = {
        "results": _run_suite([(bench_shape, s) for s in shapes], args.iters),
        "grouped": _run_suite([(bench_grouped, s) for s in grouped], args.iters) if args.grouped else [],
        "training": _run_suite(training, args.iters) if args.training else [],
        "bf16": _run_suite([(bench_bf16, (layout, *s)) for s in BF16_SHAPES for layout in BF16_LAYOUTS],
                           args.iters) if args.bf16 else [],
        "host": None if args.no_host_time else bench_host_time(),
    }
    env = environment()
    print(f"{env.get('gpu')} driver {env.get('driver')} torch {env['torch']} commit {env['commit']} {env['date']}")
    print(format_report(saved))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, **saved}, f, indent=1)
    if args.png:
        plot(saved["results"], args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
