"""Seeded shape fuzzing, non-finite inputs and concurrency on the GPU (issue 6)."""

import random
import threading

import pytest
import torch

import cute_gemm
from cute_gemm import calc_diff
from cute_gemm.jit import GemmConfig
from cute_gemm.kernels.fp8_gemm_sm90 import max_stages
from cute_gemm.quant import per_block_dequantize, per_token_dequantize
from cute_gemm.testing import make_contiguous_problem, make_fp8_gemm_problem, make_masked_problem
from layouts.tiles import BLOCK_N_CHOICES, GROUPED_BLOCK_M_CHOICES, MASKED_BLOCK_M_CHOICES, legal_tiles
from schedulers.raster import GemmKind

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def _exact_fp32_reference():
    torch.backends.cuda.matmul.allow_tf32 = False


def log_uniform(rng, lo, hi):
    return int(round(lo * (hi / lo) ** rng.random()))


def random_dense_case(rng):
    m = log_uniform(rng, 1, 3000)
    n = 8 * log_uniform(rng, 1, 800)
    k = 16 * log_uniform(rng, 1, 300)
    config = None
    if rng.random() < 0.5:  # half the cases force a random tile and cluster
        bm, bn = rng.choice(legal_tiles())
        cluster = rng.choice([(1, 1), (1, 1), (2, 1), (1, 2)])
        config = GemmConfig(bm, bn, max_stages(bm, bn), *cluster)
    return m, n, k, config


@pytest.mark.parametrize("seed", range(8))
def test_dense_fuzz(seed):
    rng = random.Random(1000 + seed)
    for _ in range(25):
        m, n, k, config = random_dense_case(rng)
        p = make_fp8_gemm_problem(m, n, k, seed=rng.randrange(1 << 30))
        cute_gemm.fp8_gemm_nt((p.a, p.sfa), (p.b, p.sfb), p.d, config=config)
        assert not torch.isnan(p.d).any(), (m, n, k, config)
        assert calc_diff(p.d, p.dequantized_reference()) < 1e-5, (m, n, k, config)


@pytest.mark.parametrize("seed", range(4))
def test_grouped_fuzz(seed):
    rng = random.Random(2000 + seed)
    for _ in range(8):
        groups = rng.randint(1, 12)
        n, k = 8 * rng.randint(1, 300), 16 * rng.randint(1, 200)
        bm, bn = rng.choice(GROUPED_BLOCK_M_CHOICES), rng.choice(BLOCK_N_CHOICES)
        rows = [rng.choice([0, rng.randint(1, 400)]) for _ in range(groups)]
        p = make_contiguous_problem(rows, n, k)
        cfg = GemmConfig(bm, bn, max_stages(bm, bn), kind=GemmKind.M_GROUPED_CONTIGUOUS)
        cute_gemm.m_grouped_fp8_gemm_nt_contiguous((p.a, p.sfa), (p.b, p.sfb), p.d, p.group_info, config=cfg)
        for g, (start, count) in enumerate(p.rows):
            if count:
                assert calc_diff(p.d[start:start + count], p.expert_reference(g)) < 1e-5, (rows, n, k, cfg)
        assert torch.isnan(p.d[(p.group_info < 0)]).all()

        m_max = rng.randint(1, 300)
        masked = [rng.randint(0, m_max) for _ in range(groups)]
        p = make_masked_problem(masked, m_max, n, k)
        bm = rng.choice(MASKED_BLOCK_M_CHOICES)  # masked tiles may be 256 rows tall
        bn = rng.choice([tile_n for tile_m, tile_n in legal_tiles() if tile_m == bm])
        cfg = GemmConfig(bm, bn, max_stages(bm, bn), kind=GemmKind.M_GROUPED_MASKED)
        cute_gemm.m_grouped_fp8_gemm_nt_masked((p.a, p.sfa), (p.b, p.sfb), p.d, p.group_info, 64, config=cfg)
        for g, count in enumerate(masked):
            if count:
                assert calc_diff(p.d[g, :count], p.expert_reference(g)) < 1e-5, (masked, m_max, n, k, cfg)
            assert torch.isnan(p.d[g, count:]).all()


@pytest.mark.parametrize("where", ["a", "sfa", "sfb"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_inputs_propagate(where, value):
    p = make_fp8_gemm_problem(200, 264, 400)
    if where == "a":
        p.a[17, 5] = torch.tensor(value).to(torch.float8_e4m3fn)
    elif where == "sfa":
        p.sfa[17, 1] = value
    else:
        p.sfb[1, 2] = value
    cute_gemm.fp8_gemm_nt((p.a, p.sfa), (p.b, p.sfb), p.d)
    torch.cuda.synchronize()
    ref = per_token_dequantize(p.a, p.sfa) @ per_block_dequantize(p.b, p.sfb).t()
    bad = ~torch.isfinite(ref)
    assert bad.any()
    assert torch.equal(~torch.isfinite(p.d.float()), bad)
    assert calc_diff(p.d[~bad.any(1)], ref[~bad.any(1)]) < 1e-5


def test_two_streams_at_once():
    problems = [make_fp8_gemm_problem(1000, 2048, 1024), make_fp8_gemm_problem(513, 4096, 2048)]
    streams = [torch.cuda.Stream(), torch.cuda.Stream()]
    torch.cuda.synchronize()
    for _ in range(3):
        for p, s in zip(problems, streams):
            with torch.cuda.stream(s):
                cute_gemm.fp8_gemm_nt((p.a, p.sfa), (p.b, p.sfb), p.d)
    torch.cuda.synchronize()
    for p in problems:
        assert calc_diff(p.d, p.dequantized_reference()) < 1e-5


def test_threads_share_the_compile_cache():
    # Distinct configurations not compiled yet in this process: the threads race to compile them.
    configs = [GemmConfig(64, bn, max_stages(64, bn) - 1) for bn in (48, 80, 96, 112)]
    problems = [make_fp8_gemm_problem(300, 1000, 640) for _ in configs]
    errors = []

    def work(p, config):
        try:
            for _ in range(3):
                cute_gemm.fp8_gemm_nt((p.a, p.sfa), (p.b, p.sfb), p.d, config=config)
            torch.cuda.current_stream().synchronize()
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=pc) for pc in zip(problems, configs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for p in problems:
        assert calc_diff(p.d, p.dequantized_reference()) < 1e-5


def test_grouped_deterministic():
    p = make_masked_problem([100, 0, 256, 31], 256, 2048, 2048)
    run = lambda: cute_gemm.m_grouped_fp8_gemm_nt_masked((p.a, p.sfa), (p.b, p.sfb), p.d, p.group_info, 128)  # noqa: E731
    first = run().clone()
    # Rows past masked_m keep their NaN poison, so compare bit patterns (NaN != NaN as floats).
    assert torch.equal(run().view(torch.int16), first.view(torch.int16))
