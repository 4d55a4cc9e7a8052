"""Numerics of the training forms on the GPU: fp32 output, accumulation into c, per-row (1x128)
B scales, and the k-grouped weight-gradient GEMM. Fresh random data, poisoned outputs, two
references (the fp32 product of the dequantised inputs, < 1e-5; of the unquantised ones, < 1e-3).
"""

import pytest
import torch

import cute_gemm
from cute_gemm import calc_diff
from cute_gemm.jit import GemmConfig
from cute_gemm.kernels.fp8_gemm_sm90 import max_stages, whole_tile_epilogue_stages
from cute_gemm.testing import make_fp8_gemm_problem, make_k_grouped_problem, random_expert_ks
from layouts.tiles import GROUPED_BLOCK_M_CHOICES, legal_tiles
from schedulers.raster import GemmKind

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def _exact_fp32_reference():
    torch.backends.cuda.matmul.allow_tf32 = False


def check(d, dequantized, unquantized, c=None):
    assert not torch.isnan(d).any(), "some outputs were not written"
    base = 0 if c is None else c
    assert calc_diff(d, dequantized + base) < 1e-5
    assert calc_diff(d, unquantized + base) < 1e-3


# DeepSeek-V3 training shapes: dgrad (m, n, k) and wgrad (n_out, k_in, tokens).
TRAINING_SHAPES = [(4096, 7168, 2048), (4096, 2048, 7168), (4096, 7168, 16384), (7168, 2112, 4096),
                   (1536, 24576, 4096), (4096, 7168, 4096), (2048, 7168, 4096), (129, 264, 1040)]


@pytest.mark.parametrize("m,n,k", TRAINING_SHAPES)
@pytest.mark.parametrize("c_mode", ["none", "in-place", "separate"])
def test_per_row_b_fp32_out(m, n, k, c_mode):
    p = make_fp8_gemm_problem(m, n, k, b_scale_rows=1, out_dtype=torch.float32)
    c = None
    if c_mode == "in-place":
        c = torch.randn(m, n, device="cuda")
        p.d.copy_(c)
        c_ref = c.clone()
        cute_gemm.fp8_gemm_nt((p.a, p.sfa), (p.b, p.sfb), p.d, c=p.d)
        c = c_ref
    else:
        if c_mode == "separate":
            c = torch.randn(m, n, device="cuda")
        cute_gemm.fp8_gemm_nt((p.a, p.sfa), (p.b, p.sfb), p.d, c=c)
    check(p.d, p.dequantized_reference(), p.unquantized_reference(), c)


@pytest.mark.parametrize("b_scale_rows,out_dtype", [(128, torch.float32), (1, torch.bfloat16)])
@pytest.mark.parametrize("m,n,k", [(4096, 7168, 2048), (4097, 2112, 7168), (64, 4096, 7168), (129, 264, 1040)])
def test_other_output_and_scale_combinations(m, n, k, b_scale_rows, out_dtype):
    p = make_fp8_gemm_problem(m, n, k, b_scale_rows=b_scale_rows, out_dtype=out_dtype)
    cute_gemm.fp8_gemm_nt((p.a, p.sfa), (p.b, p.sfb), p.d)
    check(p.d, p.dequantized_reference(), p.unquantized_reference())
    if out_dtype == torch.float32:  # c with 128x128 B scales
        c = torch.randn(m, n, device="cuda")
        d = c.clone()
        cute_gemm.fp8_gemm_nt((p.a, p.sfa), (p.b, p.sfb), d, c=d)
        check(d, p.dequantized_reference(), p.unquantized_reference(), c)


@pytest.mark.parametrize("block_m,block_n", legal_tiles(b_scale_rows=1))
def test_every_per_row_tile_with_tails(block_m, block_n):
    m, n, k = 3 * block_m + 5, 5 * 128 + 8 * 3, 128 * 3 + 48
    p = make_fp8_gemm_problem(m, n, k, scale_spread=3.0, b_scale_rows=1, out_dtype=torch.float32)
    variant = dict(b_scale_rows=1, out_dtype="fp32")
    for stages in {max_stages(block_m, block_n, **variant),
                   min(whole_tile_epilogue_stages(block_m, block_n, **variant), max_stages(block_m, block_n, **variant))}:
        if stages < 2:
            continue
        c = torch.randn(m, n, device="cuda")
        d = c.clone()
        config = GemmConfig(block_m, block_n, stages, **variant, accumulate=True)
        cute_gemm.fp8_gemm_nt((p.a, p.sfa), (p.b, p.sfb), d, c=d, config=config)
        check(d, p.dequantized_reference(), p.unquantized_reference(), c)


def test_accumulation_is_deterministic():
    p = make_fp8_gemm_problem(4096, 7168, 4096, b_scale_rows=1, out_dtype=torch.float32)
    c = torch.randn(4096, 7168, device="cuda")
    outs = []
    for _ in range(3):
        d = c.clone()
        cute_gemm.fp8_gemm_nt((p.a, p.sfa), (p.b, p.sfb), d, c=d)
        outs.append(d)
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])


# (G, m, n, expected K per expert), from DeepSeek-V3 weight gradients
K_GROUPED_SHAPES = [(4, 4096, 7168, 8192), (4, 7168, 2048, 8192), (8, 4096, 7168, 4096),
                    (8, 7168, 2048, 4096), (16, 4096, 7168, 2048)]


def check_k_grouped(p, c=None):
    d = p.d
    assert not torch.isnan(d).any(), "some outputs were not written"
    for g in range(len(p.ks)):
        base = 0 if c is None else c[g]
        if p.ks[g] == 0:
            assert torch.equal(d[g], torch.zeros_like(d[g]) + base), f"empty expert {g}"
            continue
        assert calc_diff(d[g], p.expert_reference(g) + base) < 1e-5, f"expert {g}"
        assert calc_diff(d[g], p.expert_reference(g, dequantized=False) + base) < 1e-3, f"expert {g}"


@pytest.mark.parametrize("num_groups,m,n,expected_k", K_GROUPED_SHAPES)
@pytest.mark.parametrize("c_mode", ["in-place", "none"])
def test_k_grouped_shapes(num_groups, m, n, expected_k, c_mode):
    ks = random_expert_ks(num_groups, expected_k, seed=num_groups + m, empty=1)
    p = make_k_grouped_problem(ks, m, n)
    c = None
    if c_mode == "in-place":
        c = torch.randn(num_groups, m, n, device="cuda")
        p.d.copy_(c)
        cute_gemm.k_grouped_fp8_gemm_nt_contiguous((p.a, p.sfa), (p.b, p.sfb), p.d, ks, c=p.d)
    else:
        cute_gemm.k_grouped_fp8_gemm_nt_contiguous((p.a, p.sfa), (p.b, p.sfb), p.d, ks)
    check_k_grouped(p, c)


@pytest.mark.parametrize("block_m", GROUPED_BLOCK_M_CHOICES)
@pytest.mark.parametrize("block_n", [48, 112, 128, 160])
def test_k_grouped_tiles_with_tails_and_empty_experts(block_m, block_n):
    ks = [384, 0, 128, 0, 640, 256]
    p = make_k_grouped_problem(ks, 2 * block_m + 9, 3 * block_n + 8)
    c = torch.randn(p.d.shape, device="cuda")
    variant = dict(b_scale_rows=1, out_dtype="fp32")
    config = GemmConfig(block_m, block_n, max_stages(block_m, block_n, **variant),
                        kind=GemmKind.K_GROUPED, **variant, accumulate=True)
    cute_gemm.k_grouped_fp8_gemm_nt_contiguous((p.a, p.sfa), (p.b, p.sfb), p.d, ks, c=c, config=config)
    check_k_grouped(p, c)


def test_k_grouped_all_empty_and_cuda_graph_replay():
    m, n = 256, 512
    ks = [0, 0, 0]
    p = make_k_grouped_problem([128, 128, 128], m, n)
    c = torch.randn(p.d.shape, device="cuda")
    d = c.clone()
    cute_gemm.k_grouped_fp8_gemm_nt_contiguous(
        (p.a[:, :0], p.sfa[:, :0]), (p.b[:, :0], p.sfb[:, :0]), d, ks, c=d)
    assert torch.equal(d, c)
    # A graph with ks on the device, replayed with a new split of the same 384 tokens.
    ks_dev = torch.tensor([128, 128, 128], dtype=torch.int32, device="cuda")
    p.d.zero_()
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):  # warm-up (compile) outside the capture
        cute_gemm.k_grouped_fp8_gemm_nt_contiguous((p.a, p.sfa), (p.b, p.sfb), p.d, ks_dev)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        cute_gemm.k_grouped_fp8_gemm_nt_contiguous((p.a, p.sfa), (p.b, p.sfb), p.d, ks_dev)
    for split in ([128, 128, 128], [384, 0, 0], [0, 256, 128]):
        ks_dev.copy_(torch.tensor(split, dtype=torch.int32))
        p.d.fill_(float("nan"))
        p.ks = split
        graph.replay()
        torch.cuda.synchronize()
        check_k_grouped(p)
