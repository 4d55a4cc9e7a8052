"""The training suite's table, its n/a reasons and the bench CLI, on the CPU (fake results, no GPU)."""

import json

import pytest
import torch

from cute_gemm import bench, timing


def result(us, diff=1e-6):
    return {"us": us, "tflops": 900.0, "gbps": 1200.0, "calc_diff": diff}


def training_row(kind="wgrad", groups=1, blockwise=True):
    """A row as ``bench_wgrad`` / ``bench_k_grouped`` return it; cuBLAS blockwise refused if not ``blockwise``."""
    peers = {"cute_gemm": result(100.0), "cublas_blockwise": result(110.0) if blockwise else None,
             "cublas_per_tensor": result(90.0, 7e-4), "torch_bf16": result(150.0, 1e-5)}
    return {
        "kind": kind, "groups": groups, "m": 7168, "n": 2112, "k": 4096, "peers": peers,
        "speedup": {name: (r["us"] / 100.0 if r else None) for name, r in peers.items() if name != "cute_gemm"},
        "unavailable": {} if blockwise else {"cublas_blockwise": "RuntimeError: CUBLAS_STATUS_NOT_SUPPORTED"},
    }


def test_training_table_columns_ratios_and_geomeans():
    text = bench.format_training_table([training_row(), training_row("k-grouped", 4, blockwise=False)])
    lines = text.splitlines()
    assert lines[0].startswith("| kind | G | M | N | K | cute-gemm us | TFLOPS | GB/s | diff | cuBLAS blockwise us | x")
    table = [line for line in lines if line.startswith("|")]
    assert len(table) == 4 and len({line.count("|") for line in table}) == 1  # every row has every column
    assert lines[2] == ("| wgrad | 1 | 7168 | 2112 | 4096 | 100.0 | 900 | 1200 | 1.0e-06 | 110.0 | 1.10 | "
                        "90.0 | 0.90 | 150.0 | 1.50 |")
    assert lines[3].startswith("| k-grouped | 4 |") and "| 1.0e-06 | n/a | n/a | 90.0 | 0.90 |" in lines[3]
    assert "geometric-mean speedup over cublas_blockwise: 1.10x" in lines  # over the rows it ran on
    assert "geometric-mean speedup over cublas_per_tensor: 0.90x" in lines
    assert "cublas_blockwise n/a on 1 of 2 shapes: RuntimeError: CUBLAS_STATUS_NOT_SUPPORTED" in lines
    assert any("k-grouped" in line and "loops" in line for line in lines[len(table):])


def test_a_peer_refused_everywhere_has_no_geomean():
    text = bench.format_training_table([training_row(blockwise=False)])
    assert "geometric-mean speedup over cublas_blockwise: n/a" in text.splitlines()


def test_dense_table_of_results_saved_before_the_reasons():
    row = training_row()
    del row["unavailable"], row["kind"], row["groups"]
    row["config"] = "BLOCK_M=128 BLOCK_N=160 BLOCK_K=128 stages=5 cluster=1x1 raster=16 along M"
    lines = bench.format_table([row]).splitlines()
    config = "BLOCK_M=128 BLOCK_N=160 BLOCK_K=128 stages=5 cluster=1x1"  # without the raster
    assert lines[2].startswith(f"| 7168 | 2112 | 4096 | {config} | 100.0 | 900 |")
    assert lines[1] == "|" + "---|" * 14


def test_report_has_a_table_per_suite_run():
    report = bench.format_report({"results": [], "grouped": [], "training": [training_row()], "host": None})
    assert report.startswith("| kind | G | M | N | K |")
    assert "geometric-mean speedup over torch_bf16: 1.50x" in report


def test_measure_all_keeps_why_a_peer_is_na(monkeypatch):
    monkeypatch.setattr(timing, "time_kernels", lambda fn, iters: 20.0 if fn() == "ours" else 30.0)

    def refused():
        raise RuntimeError("CUBLAS_STATUS_NOT_SUPPORTED when calling cublasLtMatmul\nand more")

    calls = {"cute_gemm": lambda: "ours", "cublas_blockwise": refused, "cublas_per_tensor": None,
             "torch_bf16": lambda: "peer"}
    checks = bench._checks(lambda out: 1e-6, lambda out: 1e-3)
    row = bench._measure_all(calls, checks, flops=2e9, nbytes=1e6, iters=3)
    assert row["peers"]["cute_gemm"] == {"us": 20.0, "tflops": 100.0, "gbps": 50.0, "calc_diff": 1e-6}
    assert row["peers"]["torch_bf16"]["calc_diff"] == 1e-3  # checked against the unquantised product
    assert row["peers"]["cublas_blockwise"] is None and row["peers"]["cublas_per_tensor"] is None
    assert row["speedup"] == {"cublas_blockwise": None, "cublas_per_tensor": None, "torch_bf16": 1.5}
    assert row["unavailable"] == {
        "cublas_blockwise": "RuntimeError: CUBLAS_STATUS_NOT_SUPPORTED when calling cublasLtMatmul and more",
        "cublas_per_tensor": f"not in torch {torch.__version__}",
    }


def test_loops_and_their_check():
    assert bench._loop([lambda: 1, None]) is None
    assert bench._loop([lambda: 1, lambda: 2])() == [1, 2]
    refs = [torch.ones(2, 2), torch.zeros(2, 2)]
    assert bench._max_diff_to(refs)(torch.stack(refs)) == 0.0  # a [G, m, n] d, expert by expert
    assert bench._max_diff_to(refs)([refs[0], torch.ones(2, 2)]) == 1.0  # an empty expert written: caught


def test_cli_training_option():
    args = bench.parse_args(["--training", "--no-dense", "--no-host-time", "--json", "t.json"])
    assert args.training and args.no_dense and args.no_host_time and not args.grouped and args.json == "t.json"
    assert not bench.parse_args([]).training


def test_suites_run_in_order_and_a_skipped_one_is_empty(capsys):
    rows = bench._run_suite([(lambda *shape, iters: (shape, iters), (4, 4096, 7168, 8192)),
                             (lambda *shape, iters: shape[0], (7168, 2112, 4096))], iters=5)
    assert rows == [((4, 4096, 7168, 8192), 5), 7168]
    assert "2/2 done" in capsys.readouterr().err
    assert bench._run_suite([], iters=5) == []  # --no-dense: no dense shapes, no progress bar


@pytest.mark.parametrize("argv", [
    ["--no-dense"],  # nothing left to run
    ["--no-dense", "--training", "--m", "128", "--n", "2112", "--k", "4096"],
    ["--training", "--m", "128"],
])
def test_cli_rejects(argv):
    with pytest.raises(SystemExit) as exit_info:
        bench.parse_args(argv)
    assert exit_info.value.code == 2


def test_cli_help_shows_the_training_option(capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(["--help"])
    help_text = capsys.readouterr().out
    assert "--training" in help_text and "--no-dense" in help_text


def test_plot_prints_saved_training_results_without_a_gpu(tmp_path, capsys):
    saved = tmp_path / "training.json"
    saved.write_text(json.dumps({"environment": {}, "results": [], "grouped": [], "training": [training_row()],
                                 "host": None}))
    assert bench.main(["--plot", str(saved), "--png", str(tmp_path / "chart.png")]) == 0
    out = capsys.readouterr()
    assert out.out.startswith("| kind | G | M | N | K |")
    assert "no dense results" in out.err and not (tmp_path / "chart.png").exists()


def bf16_row(layout="nt", speedup=0.9):
    return {"kind": "bf16", "layout": layout, "m": 4096, "n": 7168, "k": 2048, "us": 100.0, "tflops": 601.0,
            "calc_diff": 1e-7, "torch_us": 90.0, "torch_tflops": 668.0, "torch_calc_diff": 1e-7,
            "speedup": speedup}


def test_cli_bf16_option():
    args = bench.parse_args(["--bf16", "--no-dense", "--no-host-time"])
    assert args.bf16 and args.no_dense and not args.training
    assert not bench.parse_args([]).bf16
    assert len(bench.BF16_LAYOUTS) == 4 and all(len(s) == 3 for s in bench.BF16_SHAPES)


def test_bf16_table_and_per_layout_geomeans():
    rows = [bf16_row("nt", 0.8), bf16_row("nt", 1.25), bf16_row("tn", 0.5)]
    text = bench.format_bf16_table(rows)
    assert text.splitlines()[0].startswith("| layout | M | N | K |")
    assert "| NT | 4096 | 7168 | 2048 |" in text and "| TN |" in text
    assert "NT: geometric-mean speedup over torch.matmul 1.00x (0.80-1.25x)" in text
    assert "TN: geometric-mean speedup over torch.matmul 0.50x" in text and "NN:" not in text


def test_plot_prints_saved_bf16_results_without_a_gpu(tmp_path, capsys):
    saved = tmp_path / "bf16.json"
    saved.write_text(json.dumps({"environment": {}, "results": [], "grouped": [], "training": [],
                                 "bf16": [bf16_row()], "host": None}))
    assert bench.main(["--plot", str(saved)]) == 0
    assert "| NT | 4096 | 7168 | 2048 |" in capsys.readouterr().out
