"""The benchmark's tables render on the CPU (``python -m cute_gemm.bench --plot`` needs no GPU)."""

from cute_gemm import bench, peers


def grouped_row(**extra):
    row = {
        "kind": "masked", "groups": 4, "m": 256, "n": 4096, "k": 7168, "us": 50.0, "tflops": 1100.0,
        "gbps": 2400.0, "calc_diff": 1.4e-6, "cublas_loop_us": 60.0, "cublas_loop_tflops": 900.0,
        "cublas_loop_calc_diff": 1e-4, "speedup": 1.2, "torch_grouped_us": None,
        "torch_grouped_calc_diff": None, "torch_grouped_speedup": None,
    }
    row.update(extra)
    return row


def test_grouped_table_with_and_without_the_torch_peer():
    text = bench.format_grouped_table([
        grouped_row(), grouped_row(torch_grouped_us=55.0, torch_grouped_speedup=1.1),
    ])
    lines = text.splitlines()
    assert "torch grouped row-wise us" in lines[0]
    assert len({line.count("|") for line in lines}) == 1  # every row has every column
    assert lines[2].endswith("| n/a | n/a |")
    assert lines[3].endswith("| 55.0 | 1.10 |")


def test_grouped_peer_absent_on_the_cpu():
    import torch

    x = torch.randn(256, 256)
    (a, sa), (b, sb) = peers.rowwise_cast(x), peers.rowwise_cast(torch.randn(2, 128, 256))
    assert a.dtype == torch.float8_e4m3fn and sa.shape == (256,) and sb.shape == (2, 128)
    offs = torch.tensor([128, 256], dtype=torch.int32)
    assert peers.torch_grouped_rowwise(a, sa, b, sb, offs) is None  # refuses CPU tensors: no peer


def test_host_time_line():
    line = bench.format_host_time({"m": 64, "n": 7168, "k": 7168, "fp8_gemm_nt_us": 10.5, "add_us": 7.5,
                                   "ratio": 1.4, "cuda_graph_replay_matches": True})
    assert "fp8_gemm_nt 10.5 us" in line and "ratio 1.40" in line and "matches eager: True" in line


def test_masked_decoding_rows_show_their_slots():
    text = bench.format_grouped_table([grouped_row(groups=32, m=32, m_max=256)])
    assert "| masked | 32 | 32 of 256 | 4096 | 7168 |" in text.splitlines()[2]


def test_short_config_names_split_k_and_compiled_in_shapes():
    from cute_gemm.jit import GemmConfig
    static = GemmConfig(256, 128, 4, static_nk=(7168, 16384)).describe()
    assert bench._short_config(static) == "BLOCK_M=256 BLOCK_N=128 BLOCK_K=128 stages=4 cluster=1x1 N,K compiled in"
    split = GemmConfig(128, 64, 6, split_k=2).describe()
    assert bench._short_config(split) == "BLOCK_M=128 BLOCK_N=64 BLOCK_K=128 stages=6 cluster=1x1 split_k=2"
