"""Split-K (a cluster of 2 or 4 CTAs per tile, partials summed through distributed shared memory)
on the GPU: fresh random data, poisoned outputs, both references, bit-identical reruns."""

import pytest
import torch

import cute_gemm
from cute_gemm import calc_diff
from cute_gemm.jit import GemmConfig
from cute_gemm.kernels.fp8_gemm_sm90 import max_stages, whole_tile_epilogue_stages
from cute_gemm.testing import make_fp8_gemm_problem

pytestmark = pytest.mark.gpu

SPLIT_TILES = [(64, 128, 4), (64, 128, 2), (64, 64, 2), (64, 32, 2), (128, 32, 2), (128, 128, 4), (128, 128, 2), (128, 64, 2), (128, 96, 3),
               (64, 96, 3)]


@pytest.fixture(autouse=True)
def _exact_fp32_reference():
    torch.backends.cuda.matmul.allow_tf32 = False


def _config(block_m, block_n, split_k, stages=None, **variant):
    most = max_stages(block_m, block_n, split_k=split_k, **{
        k: v for k, v in variant.items() if k in ("b_scale_rows", "out_dtype")})
    return GemmConfig(block_m, block_n, min(stages or most, most), split_k=split_k, **variant)


def check(p, d):
    assert not torch.isnan(d).any(), "some outputs were not written"
    assert calc_diff(d, p.dequantized_reference()) < 1e-5
    assert calc_diff(d, p.unquantized_reference()) < 1e-3


@pytest.mark.parametrize("block_m,block_n,split_k", SPLIT_TILES)
@pytest.mark.parametrize("m,n,k", [
    (64, 4096, 7168),       # the small-M shape split-K is for
    (3 * 64 + 5, 1160, 1040),  # tails in M, N and K (K blocks not a multiple of the split)
    (100, 16384, 2048),     # more tiles than clusters: each cluster runs several tiles
])
def test_split_k_tiles(block_m, block_n, split_k, m, n, k):
    p = make_fp8_gemm_problem(m, n, k, scale_spread=2.0)
    cute_gemm.fp8_gemm_nt((p.a, p.sfa), (p.b, p.sfb), p.d, config=_config(block_m, block_n, split_k))
    check(p, p.d)


@pytest.mark.parametrize("k", [128, 256, 384])
def test_fewer_k_blocks_than_splits(k):
    # Some CTAs of each cluster read no K block and contribute zeros.
    p = make_fp8_gemm_problem(128, 2048, k)
    cute_gemm.fp8_gemm_nt((p.a, p.sfa), (p.b, p.sfb), p.d, config=_config(128, 128, 4))
    assert not torch.isnan(p.d).any()
    assert calc_diff(p.d, p.dequantized_reference()) < 1e-5


def test_ring_epilogue():
    # Fewer stages than fit: the whole-share epilogue; most stages: a ring of buffers.
    for stages in (whole_tile_epilogue_stages(128, 128, split_k=2), max_stages(128, 128, split_k=2)):
        p = make_fp8_gemm_problem(256, 8192, 4096)
        cute_gemm.fp8_gemm_nt((p.a, p.sfa), (p.b, p.sfb), p.d, config=_config(128, 128, 2, stages))
        check(p, p.d)


def test_bit_identical_reruns():
    # The partials are summed in rank order whichever CTA finishes first.
    p = make_fp8_gemm_problem(128, 4096, 7168)
    config = _config(128, 128, 4)
    cute_gemm.fp8_gemm_nt((p.a, p.sfa), (p.b, p.sfb), p.d, config=config)
    first = p.d.clone()
    for _ in range(5):
        p.d.fill_(float("nan"))
        cute_gemm.fp8_gemm_nt((p.a, p.sfa), (p.b, p.sfb), p.d, config=config)
        assert torch.equal(p.d, first)


@pytest.mark.parametrize("accumulate", [False, True])
def test_fp32_out_per_row_scales(accumulate):
    # The training variant: per-row B scales, fp32 d, optionally d += a @ b^T (each owner adds
    # its share of the summed tile once).
    p = make_fp8_gemm_problem(128, 4096, 4096, b_scale_rows=1, out_dtype=torch.float32)
    c = torch.randn_like(p.d) if accumulate else None
    if accumulate:
        p.d.copy_(c)
    variant = dict(b_scale_rows=1, out_dtype="fp32", accumulate=accumulate)
    config = _config(128, 128, 2, **variant)
    cute_gemm.fp8_gemm_nt((p.a, p.sfa), (p.b, p.sfb), p.d, c=p.d if accumulate else None, config=config)
    expected = p.dequantized_reference() + (c if accumulate else 0)
    assert not torch.isnan(p.d).any()
    assert calc_diff(p.d, expected) < 1e-5


def test_cuda_graph_replay():
    p = make_fp8_gemm_problem(64, 4096, 7168)
    config = _config(64, 128, 4)
    cute_gemm.fp8_gemm_nt((p.a, p.sfa), (p.b, p.sfb), p.d, config=config)  # compile, warm
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        cute_gemm.fp8_gemm_nt((p.a, p.sfa), (p.b, p.sfb), p.d, config=config)
    for _ in range(3):
        p.d.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        check(p, p.d)
