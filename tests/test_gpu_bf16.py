"""Numerics of the BF16 GEMMs on the GPU: dense (bf16 or fp32 out, accumulation into c), every tile
with tails, and both m-grouped forms; poisoned outputs; reference: the fp32 product of the bf16
inputs (calc_diff < 1e-5)."""

import pytest
import torch

import cute_gemm
from cute_gemm import calc_diff
from cute_gemm.jit import GemmConfig
from cute_gemm.kernels.fp8_gemm_sm90 import max_stages
from cute_gemm.testing import make_contiguous_problem, make_masked_problem
from layouts.tiles import legal_tiles

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def _exact_fp32_reference():
    torch.backends.cuda.matmul.allow_tf32 = False


def inputs(m, n, k):
    x = torch.randn(m, k, device="cuda").bfloat16()
    y = torch.randn(n, k, device="cuda").bfloat16()
    return x, y, x.float() @ y.float().t()


@pytest.mark.parametrize("m,n,k", [(4096, 7168, 2048), (4097, 2112, 7168), (64, 4096, 7168),
                                   (129, 264, 1048), (1, 576, 7168)])
@pytest.mark.parametrize("out", ["bf16", "fp32", "fp32+c", "fp32+=c"])
def test_dense(m, n, k, out):
    x, y, ref = inputs(m, n, k)
    dtype = torch.bfloat16 if out == "bf16" else torch.float32
    d = torch.full((m, n), float("nan"), dtype=dtype, device="cuda")
    c = None
    if out == "fp32+c":
        c = torch.randn(m, n, device="cuda")
    if out == "fp32+=c":
        d = torch.randn(m, n, device="cuda")
        c = d.clone()
        cute_gemm.bf16_gemm_nt(x, y, d, c=d)
    else:
        cute_gemm.bf16_gemm_nt(x, y, d, c=c)
    assert not torch.isnan(d).any()
    assert calc_diff(d, ref + (0 if c is None else c)) < 1e-5


@pytest.mark.parametrize("block_m,block_n", legal_tiles())
def test_every_tile_with_tails(block_m, block_n):
    m, n, k = 3 * block_m + 5, 5 * 128 + 8 * 3, 64 * 5 + 24
    x, y, ref = inputs(m, n, k)
    d = torch.full((m, n), float("nan"), dtype=torch.bfloat16, device="cuda")
    config = GemmConfig(block_m, block_n, max_stages(block_m, block_n, ab_dtype="bf16"), ab_dtype="bf16")
    cute_gemm.bf16_gemm_nt(x, y, d, config=config)
    assert calc_diff(d, ref) < 1e-5


@pytest.mark.parametrize("num_groups,rows,n,k", [(4, 1000, 4096, 7168), (8, 300, 7168, 2048)])
def test_m_grouped_contiguous(num_groups, rows, n, k):
    group_rows = [rows + 37 * g for g in range(num_groups)]
    p = make_contiguous_problem(group_rows, n, k)
    cute_gemm.m_grouped_bf16_gemm_nt_contiguous(p.x, p.y, p.d, p.group_info)
    for g, (start, count) in enumerate(p.rows):
        out = p.d[start:start + count]
        assert calc_diff(out, p.expert_reference(g, dequantized=False)) < 1e-5
    padding = p.group_info.cpu() < 0
    assert torch.isnan(p.d[padding.cuda()]).all(), "padding rows were written"


@pytest.mark.parametrize("num_groups,m_max,n,k,expected_m", [(4, 256, 4096, 7168, 200), (32, 256, 7168, 2048, 32)])
def test_m_grouped_masked(num_groups, m_max, n, k, expected_m):
    masked_m = [(37 * g) % (m_max + 1) for g in range(num_groups)]
    masked_m[0] = 0
    p = make_masked_problem(masked_m, m_max, n, k)
    cute_gemm.m_grouped_bf16_gemm_nt_masked(p.x, p.y, p.d, p.group_info, expected_m)
    for g, count in enumerate(masked_m):
        if count:
            assert calc_diff(p.d[g, :count], p.expert_reference(g, dequantized=False)) < 1e-5
        assert torch.isnan(p.d[g, count:]).all(), f"expert {g}: rows past masked_m were written"


@pytest.mark.parametrize("layout", ["nn", "tn", "tt"])
@pytest.mark.parametrize("m,n,k", [(4096, 7168, 2048), (4104, 2112, 7168), (136, 264, 1048), (64, 4096, 7168)])
def test_other_majors(layout, m, n, k):
    # a [m, k] or (t) [k, m]; b [n, k] or (n) [k, n]: the kernel reads them M-/N-contiguous.
    x, y, ref = inputs(m, n, k)
    a = x.t().contiguous() if layout[0] == "t" else x
    b = y.t().contiguous() if layout[1] == "n" else y
    d = torch.full((m, n), float("nan"), device="cuda")
    getattr(cute_gemm, f"bf16_gemm_{layout}")(a, b, d)
    assert calc_diff(d, ref) < 1e-5


@pytest.mark.parametrize("a_major,b_major", [("k", "mn"), ("mn", "k"), ("mn", "mn")])
@pytest.mark.parametrize("block_m,block_n", [(128, 128), (128, 112), (64, 48), (64, 160), (256, 128)])
def test_other_majors_every_tile_kind(a_major, b_major, block_m, block_n):
    m, n, k = 3 * block_m + 8, 5 * 128 + 8 * 3, 64 * 5 + 24
    x, y, ref = inputs(m, n, k)
    a = x.t().contiguous() if a_major == "mn" else x  # as given: [k, m] when M-major
    b = y.t().contiguous() if b_major == "mn" else y
    layout = ("t" if a_major == "mn" else "n") + ("n" if b_major == "mn" else "t")
    d = torch.full((m, n), float("nan"), dtype=torch.bfloat16, device="cuda")
    config = GemmConfig(block_m, block_n, max_stages(block_m, block_n, ab_dtype="bf16"), ab_dtype="bf16",
                        a_major=a_major, b_major=b_major)
    getattr(cute_gemm, f"bf16_gemm_{layout}")(a, b, d, config=config)
    assert calc_diff(d, ref) < 1e-5
