"""Command line: ``python -m cute_gemm {demo,bench,explain,precompile}``."""

from __future__ import annotations

import argparse
import sys


def demo(args) -> int:
    """On a GPU: run, check and time one DeepSeek-V3 GEMM next to cuBLAS. Without: compile it."""
    import torch

    from cute_gemm import heuristics
    from cute_gemm.device import get_num_sms

    m, n, k = args.m, args.n, args.k
    config = heuristics.choose_config(m, n, k, get_num_sms())
    print(f"fp8_gemm_nt {m}x{n}x{k} (DeepSeek-V3 shape): {config.describe()}")
    if not torch.cuda.is_available():
        from cute_gemm.sass import compile_report

        print("no CUDA GPU here: compiling for sm_90a only")
        report = compile_report(config)
        print(f"built {report.cubin_bytes // 1024} KB of sm_90a code")
        print(report.summary())
        return 0
    from cute_gemm.bench import bench_shape

    row = bench_shape(m, n, k)
    ours = row["peers"]["cute_gemm"]
    ok = ours["calc_diff"] < 1e-5
    print(f"check against the fp32 product of the dequantised inputs: calc_diff {ours['calc_diff']:.2e} "
          f"({'ok' if ok else 'FAILED'})")
    print(f"{'':18s}{'time us':>10s}{'TFLOPS':>9s}{'vs ours':>9s}")
    for name, r in row["peers"].items():
        if r is None:
            print(f"{name:18s}{'not available in this torch':>28s}")
            continue
        print(f"{name:18s}{r['us']:10.1f}{r['tflops']:9.0f}{r['us'] / ours['us']:9.2f}")
    return 0 if ok else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cute_gemm")
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="run (GPU) or compile (no GPU) one DeepSeek-V3 GEMM")
    p_explain = sub.add_parser(
        "explain", help="the configuration chosen for a shape, why, and its tiles and waves on the SMs")
    for p in (p_demo, p_explain):
        p.add_argument("--m", type=int, default=4096)
        p.add_argument("--n", type=int, default=7168)
        p.add_argument("--k", type=int, default=16384)
    p_pre = sub.add_parser("precompile", help="compile the heuristic's kernels into the disk cache (no GPU needed)")
    p_pre.add_argument("--shapes", default="deepseek-v3", help="a named set of (N, K) shapes")
    p_pre.add_argument("--n", type=int, nargs="*")
    p_pre.add_argument("--k", type=int, nargs="*")
    p_pre.add_argument("--json", help="a JSON list of [n, k] pairs")
    p_pre.add_argument("--num-sms", type=int, default=None)
    sub.add_parser("bench", help="the benchmark (same as python -m cute_gemm.bench)", add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command == "bench":
        from cute_gemm.bench import main as bench_main

        return bench_main(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "demo":
        return demo(args)
    if args.command == "precompile":
        from cute_gemm.device import get_num_sms
        from cute_gemm.precompile import parse_shapes, precompile

        precompile(parse_shapes(args), args.num_sms or get_num_sms())
        return 0
    from cute_gemm import heuristics
    from cute_gemm.device import get_num_sms
    from cute_gemm.waves import render_waves

    num_sms = get_num_sms()
    print(heuristics.explain(args.m, args.n, args.k, num_sms))
    config = heuristics.choose_config(args.m, args.n, args.k, num_sms)
    print()
    print(render_waves(
        args.m, args.n, config.block_m, config.block_n, num_sms,
        cluster=(config.cluster_m, config.cluster_n), group=config.raster_group,
        along_m=config.raster_along_m, split_k=config.split_k,
    ))
    return 0


if __name__ == "__main__":
    sys.exit(main())
