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
