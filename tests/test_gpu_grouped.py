"""Numerics of the MoE grouped GEMMs on the GPU: per expert, two references, poisoned outputs."""

import random

import pytest
import torch

import cute_gemm
from cute_gemm import calc_diff
from cute_gemm.jit import GemmConfig
from cute_gemm.kernels.fp8_gemm_sm90 import max_stages
from cute_gemm.testing import make_contiguous_problem, make_masked_problem
from schedulers.raster import GemmKind

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def _exact_fp32_reference():
    torch.backends.cuda.matmul.allow_tf32 = False


def check_contiguous(p):
    for g, (start, count) in enumerate(p.rows):
        out = p.d[start:start + count]
        assert not torch.isnan(out).any(), f"expert {g}: rows not written"
        assert calc_diff(out, p.expert_reference(g)) < 1e-5, f"expert {g}"
        assert calc_diff(out, p.expert_reference(g, dequantized=False)) < 1e-3, f"expert {g}"
    padding = p.group_info.cpu() < 0
    assert torch.isnan(p.d[padding.to(p.d.device)]).all(), "padding rows were written"


def check_masked(p):
    for g, count in enumerate(p.rows):
        out = p.d[g, :count]
        assert not torch.isnan(out).any(), f"expert {g}: rows not written"
        if count:
            assert calc_diff(out, p.expert_reference(g)) < 1e-5, f"expert {g}"
            assert calc_diff(out, p.expert_reference(g, dequantized=False)) < 1e-3, f"expert {g}"
        assert torch.isnan(p.d[g, count:]).all(), f"expert {g}: rows past masked_m were written"


@pytest.mark.parametrize(
    "groups,m_per_group,n,k",
    [(4, 8192, 4096, 7168), (4, 8192, 7168, 2048), (8, 4096, 4096, 7168), (8, 4096, 7168, 2048)],
)
def test_contiguous(groups, m_per_group, n, k):
    rng = random.Random(groups * n + k)
    rows = [int(m_per_group * rng.uniform(0.7, 1.3)) for _ in range(groups)]
    p = make_contiguous_problem(rows, n, k)
    cute_gemm.m_grouped_fp8_gemm_nt_contiguous((p.a, p.sfa), (p.b, p.sfb), p.d, p.group_info)
    check_contiguous(p)


@pytest.mark.parametrize("block_m,block_n", [(64, 112), (128, 160), (128, 64)])
def test_contiguous_tiles_with_empty_experts(block_m, block_n):
    p = make_contiguous_problem([0, 300, 0, 1, 128, 0], 1000, 1040)
    config = GemmConfig(block_m, block_n, max_stages(block_m, block_n), kind=GemmKind.M_GROUPED_CONTIGUOUS)
    cute_gemm.m_grouped_fp8_gemm_nt_contiguous((p.a, p.sfa), (p.b, p.sfb), p.d, p.group_info, config=config)
    check_contiguous(p)


def psum_call(p, config=None):
    psum = cute_gemm.moe.make_contiguous_psum([count for _, count in p.rows], device="cuda")
    cute_gemm.m_grouped_fp8_gemm_nt_contiguous(
        (p.a, p.sfa), (p.b, p.sfb), p.d, psum, config=config, use_psum_layout=True)


@pytest.mark.parametrize("groups,m_per_group,n,k", [(4, 8192, 4096, 7168), (8, 4096, 7168, 2048)])
def test_contiguous_psum_layout(groups, m_per_group, n, k):
    # The same layout given as the end row of each expert: padding rows stay poisoned.
    rng = random.Random(groups * n + k + 1)
    rows = [int(m_per_group * rng.uniform(0.7, 1.3)) for _ in range(groups)]
    rows[rng.randrange(groups)] = 0
    p = make_contiguous_problem(rows, n, k)
    psum_call(p)
    check_contiguous(p)


@pytest.mark.parametrize("block_m,block_n", [(64, 112), (128, 160), (128, 64)])
def test_contiguous_psum_tiles_with_empty_and_tiny_experts(block_m, block_n):
    # Experts ending inside a tile (1, 65, 300 rows) and 64-row tiles that are all padding.
    p = make_contiguous_problem([0, 300, 0, 1, 128, 65, 0], 1000, 1040)
    psum_call(p, GemmConfig(block_m, block_n, max_stages(block_m, block_n), kind=GemmKind.M_GROUPED_CONTIGUOUS_PSUM))
    check_contiguous(p)


MASKED_SHAPES = [(1, 1024, 4096, 7168, None), (1, 1024, 7168, 2048, None), (2, 512, 4096, 7168, None),
                 (2, 512, 7168, 2048, None), (4, 256, 4096, 7168, None), (4, 256, 7168, 2048, None),
                 (32, 256, 4096, 7168, 32)]


@pytest.mark.parametrize("groups,m_max,n,k,expected", MASKED_SHAPES)
def test_masked(groups, m_max, n, k, expected):
    rng = random.Random(groups * m_max + n + k)
    hi = m_max if expected is None else min(m_max, 2 * expected)
    masked_m = [rng.randint(1, hi) for _ in range(groups)]
    masked_m[rng.randrange(groups)] = 0
    p = make_masked_problem(masked_m, m_max, n, k)
    cute_gemm.m_grouped_fp8_gemm_nt_masked(
        (p.a, p.sfa), (p.b, p.sfb), p.d, p.group_info, expected or m_max
    )
    check_masked(p)


@pytest.mark.parametrize("block_m,block_n", [(64, 112), (128, 160), (64, 16), (256, 128), (256, 112), (256, 96)])
def test_masked_tiles_edges(block_m, block_n):
    p = make_masked_problem([0, 1, 63, 64, 65, 200, 0], 200, 264, 1040)
    config = GemmConfig(block_m, block_n, max_stages(block_m, block_n), kind=GemmKind.M_GROUPED_MASKED)
    cute_gemm.m_grouped_fp8_gemm_nt_masked((p.a, p.sfa), (p.b, p.sfb), p.d, p.group_info, 64, config=config)
    check_masked(p)


def test_masked_cuda_graph_replay_with_new_counts():
    p = make_masked_problem([10, 0, 200, 77], 256, 2048, 1024)
    run = lambda: cute_gemm.m_grouped_fp8_gemm_nt_masked(  # noqa: E731
        (p.a, p.sfa), (p.b, p.sfb), p.d, p.group_info, 128
    )
    run()  # compile outside the capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        run()
    for counts in ([256, 3, 0, 129], [0, 0, 0, 0], [1, 256, 64, 65]):
        p.d.fill_(float("nan"))
        p.group_info.copy_(torch.tensor(counts, dtype=torch.int32))
        p.rows = counts
        graph.replay()
        torch.cuda.synchronize()
        check_masked(p)


def test_masked_counts_out_of_range_are_clamped():
    # masked_m lives on the device and is not checked by the host: the kernel must clamp it.
    m_max = 200
    p = make_masked_problem([m_max, 0, 10], m_max, 264, 1040)
    p.group_info.copy_(torch.tensor([m_max + 70, -5, 10], dtype=torch.int32))
    cute_gemm.m_grouped_fp8_gemm_nt_masked((p.a, p.sfa), (p.b, p.sfb), p.d, p.group_info, 64)
    check_masked(p)
