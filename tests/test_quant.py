"""FP8 quantisation helpers and the accuracy metric (cute_gemm.quant), on the CPU.

Proves: per-token (1x128) and per-block (128x128) casts round-trip through their dequantise helpers
within e4m3's rounding error (elementwise, bounded by 2^-4 of the value plus half a subnormal step
of the block's scale) for K that is not a multiple of 128 and for a single row; scales have the
right shape, dtype and value (block amax / 448); zeros give no NaN/inf; the TMA-aligned scale
transform gives an M-major ``[m, kb]`` tensor with column stride ``round_up(m, 4)`` and the same
values, and returns aligned input itself; ``is_tma_aligned_sfa`` accepts and rejects the right
layouts; and ``calc_diff`` is 0 for equal inputs, NaN (never passing a threshold) for NaN inputs,
and ``(1 - c)^2 / (1 + c^2)`` for a copy scaled by ``c``.
"""

import pytest
import torch

from cute_gemm.quant import (
    FP8_MAX,
    calc_diff,
    get_mn_major_tma_aligned_tensor,
    is_tma_aligned_sfa,
    per_block_cast_to_fp8,
    per_block_dequantize,
    per_token_cast_to_fp8,
    per_token_dequantize,
)

SHAPES = [(1, 16), (1, 7168), (7, 1040), (128, 1040), (264, 16), (264, 7168), (3, 128), (130, 200)]
DTYPES = [torch.float32, torch.bfloat16]

# e4m3: 3 mantissa bits, so round-to-nearest is within 2^-4 relative for normal values; below
# 2^-6 (subnormals, step 2^-9) the absolute error is at most 2^-10, in units of the scale.
REL = 2.0**-4
SUBNORMAL_HALF_STEP = 2.0**-10


def random_input(shape, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen)
    # Different magnitudes per row and per 128 columns, so every scale matters.
    x = x * torch.pow(10.0, torch.rand(shape[0], 1, generator=gen) * 4 - 2)
    x = x * torch.pow(10.0, torch.rand(1, shape[1], generator=gen) * 2 - 1)
    return x.to(dtype)


def token_amax(x):
    """Reference scales of the per-token recipe: amax of each row's 128-column block."""
    m, k = x.shape
    return torch.stack(
        [x[:, j : j + 128].float().abs().amax(dim=1) for j in range(0, k, 128)], dim=1
    )


def block_amax(x):
    n, k = x.shape
    return torch.tensor(
        [
            [x[i : i + 128, j : j + 128].float().abs().max().item() for j in range(0, k, 128)]
            for i in range(0, n, 128)
        ]
    )


def check_round_trip(x, x_fp8, sf, dequant, sf_full):
    """sf_full: the scale of each element, [m, k]."""
    xf = x.float()
    assert x_fp8.dtype == torch.float8_e4m3fn and x_fp8.shape == x.shape and x_fp8.is_contiguous()
    assert sf.dtype == torch.float32
    assert torch.isfinite(dequant).all()
    err = (dequant - xf).abs()
    bound = REL * xf.abs() + SUBNORMAL_HALF_STEP * sf_full + 1e-6 * sf_full * FP8_MAX
    assert (err <= bound).all(), f"worst excess {(err - bound).max().item()}"
    assert calc_diff(dequant, xf) < 1e-3
    # The quantised values stay in range, and each block's amax maps to the largest fp8 value.
    assert x_fp8.float().abs().max().item() <= FP8_MAX


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,k", SHAPES)
def test_per_token_round_trip(m, k, dtype):
    x = random_input((m, k), dtype, seed=m * 100003 + k)
    x_fp8, sf = per_token_cast_to_fp8(x)
    kb = -(-k // 128)
    assert sf.shape == (m, kb)
    torch.testing.assert_close(sf, token_amax(x) / FP8_MAX, rtol=0, atol=0)
    sf_full = sf.repeat_interleave(128, dim=1)[:, :k]
    check_round_trip(x, x_fp8, sf, per_token_dequantize(x_fp8, sf), sf_full)
    # The largest value of every (row, 128-column block) becomes +-448 exactly.
    block_max = torch.stack(
        [x_fp8[:, j : j + 128].float().abs().amax(dim=1) for j in range(0, k, 128)], dim=1
    )
    assert (block_max == FP8_MAX).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,k", SHAPES)
def test_per_block_round_trip(n, k, dtype):
    x = random_input((n, k), dtype, seed=n * 100019 + k)
    x_fp8, sf = per_block_cast_to_fp8(x)
    nb, kb = -(-n // 128), -(-k // 128)
    assert sf.shape == (nb, kb)
    torch.testing.assert_close(sf, block_amax(x) / FP8_MAX, rtol=0, atol=0)
    sf_full = sf.repeat_interleave(128, 0).repeat_interleave(128, 1)[:n, :k]
    check_round_trip(x, x_fp8, sf, per_block_dequantize(x_fp8, sf), sf_full)


@pytest.mark.parametrize("cast", [per_token_cast_to_fp8, per_block_cast_to_fp8])
def test_scale_blocks_are_independent(cast):
    # A huge value in one block must not affect the precision of its neighbours.
    x = torch.randn(256, 384)
    x[0, 0] = 1e6
    x_fp8, sf = cast(x)
    dequant = (per_token_dequantize if cast is per_token_cast_to_fp8 else per_block_dequantize)(
        x_fp8, sf
    )
    assert calc_diff(dequant[128:, 128:], x[128:, 128:]) < 1e-3


@pytest.mark.parametrize("m,k", [(1, 16), (5, 1040), (130, 256)])
def test_all_zero_input(m, k):
    x = torch.zeros(m, k, dtype=torch.bfloat16)
    for cast, dequant in [
        (per_token_cast_to_fp8, per_token_dequantize),
        (per_block_cast_to_fp8, per_block_dequantize),
    ]:
        x_fp8, sf = cast(x)
        assert torch.isfinite(sf).all() and (sf > 0).all()
        assert torch.isfinite(x_fp8.float()).all() and (x_fp8.float() == 0).all()
        assert (dequant(x_fp8, sf) == 0).all()


def test_zero_block_next_to_nonzero_block():
    x = torch.zeros(2, 256)
    x[0, 128:] = torch.linspace(-3, 3, 128)
    x_fp8, sf = per_token_cast_to_fp8(x)
    assert torch.isfinite(sf).all()
    deq = per_token_dequantize(x_fp8, sf)
    assert (deq[:, :128] == 0).all() and (deq[1] == 0).all()
    assert calc_diff(deq, x) < 1e-3


@pytest.mark.parametrize("cast", [per_token_cast_to_fp8, per_block_cast_to_fp8])
def test_cast_rejects_non_2d(cast):
    with pytest.raises(ValueError):
        cast(torch.zeros(2, 3, 128))


# ---- TMA-aligned scales ----------------------------------------------------------------------


def round_up4(m):
    return (m + 3) // 4 * 4


@pytest.mark.parametrize("m,kb", [(1, 1), (1, 9), (3, 1), (4, 2), (5, 9), (64, 56), (127, 12),
                                  (128, 4), (4097, 3)])
def test_mn_major_tma_aligned_transform(m, kb):
    sf = torch.rand(m, kb, generator=torch.Generator().manual_seed(m * 31 + kb))  # row-major
    out = get_mn_major_tma_aligned_tensor(sf)
    assert out.shape == (m, kb) and out.dtype == torch.float32
    assert out.stride() == (1, round_up4(m))
    assert out.data_ptr() % 16 == 0
    assert torch.equal(out, sf)
    assert is_tma_aligned_sfa(out)
    # Already-aligned input comes back as the very same object: no copy.
    assert get_mn_major_tma_aligned_tensor(out) is out


@pytest.mark.parametrize("m,kb", [(8, 3), (64, 1), (128, 56)])
def test_aligned_m_major_input_is_not_copied(m, kb):
    sf = torch.rand(kb, m).t()  # M-major, column stride m (a multiple of 4)
    assert is_tma_aligned_sfa(sf)
    assert get_mn_major_tma_aligned_tensor(sf) is sf


def test_transform_of_strided_input():
    # Scales read from a wider buffer (non-contiguous, neither M- nor K-major-packed).
    wide = torch.rand(10, 20)
    sf = wide[:, 3:8]
    out = get_mn_major_tma_aligned_tensor(sf)
    assert out.stride() == (1, 12) and torch.equal(out, sf)


def _strided(m, kb, stride, offset=0):
    storage = torch.rand(offset + max(stride[0] * (m - 1) + stride[1] * (kb - 1) + 1, 1) + 64)
    return storage.as_strided((m, kb), stride, offset)


@pytest.mark.parametrize(
    "make,expected",
    [
        (lambda: _strided(8, 3, (1, 8)), True),  # M-major, column stride m
        (lambda: _strided(6, 3, (1, 8)), True),  # M-major, padded column stride
        (lambda: _strided(1, 3, (3, 4)), True),  # one row: its row stride does not matter
        (lambda: _strided(8, 3, (1, 12)), True),  # extra padding is fine
        (lambda: _strided(8, 3, (3, 1)), False),  # K-major (row-major)
        (lambda: _strided(6, 3, (1, 6)), False),  # column stride not a multiple of 4 floats
        (lambda: _strided(8, 3, (1, 4)), False),  # column stride < m: columns overlap
        (lambda: _strided(8, 3, (2, 16)), False),  # rows not contiguous
        (lambda: _strided(8, 3, (1, 8), offset=1), False),  # base not 16-byte aligned
        (lambda: _strided(8, 3, (1, 8), offset=2), False),
        (lambda: _strided(8, 3, (1, 8), offset=4), True),  # 16-byte offset is fine
        (lambda: _strided(1, 1, (1, 1)), False),  # column stride 1: not a multiple of 4
    ],
)
def test_is_tma_aligned_sfa(make, expected):
    sf = make()
    assert sf.untyped_storage().data_ptr() % 16 == 0  # offsets above are relative to this
    assert is_tma_aligned_sfa(sf) is expected
    out = get_mn_major_tma_aligned_tensor(sf)
    assert torch.equal(out, sf) and is_tma_aligned_sfa(out)
    assert (out is sf) is expected


@pytest.mark.parametrize(
    "sf", [torch.zeros(4, 2, dtype=torch.float64), torch.zeros(4, 2, dtype=torch.bfloat16),
           torch.zeros(8), torch.zeros(2, 2, 4, 2)],
    ids=["float64", "bfloat16", "1d", "4d"],
)
def test_transform_rejects_bad_input(sf):
    with pytest.raises(ValueError, match="sf"):
        get_mn_major_tma_aligned_tensor(sf)


# ---- calc_diff -------------------------------------------------------------------------------


def test_calc_diff_identical_is_zero():
    x = torch.randn(64, 96, generator=torch.Generator().manual_seed(0))
    assert calc_diff(x, x) == 0.0
    assert calc_diff(x, x.clone()) == 0.0
    assert calc_diff(x.bfloat16(), x.bfloat16()) == 0.0
    assert isinstance(calc_diff(x, x), float)


@pytest.mark.parametrize("where", [(0, 0), (63, 95)])
def test_calc_diff_nan_never_passes(where):
    x = torch.randn(64, 96, generator=torch.Generator().manual_seed(1))
    y = x.clone()
    y[where] = float("nan")
    for diff in (calc_diff(x, y), calc_diff(y, x), calc_diff(y, y)):
        assert diff != diff  # NaN
        assert not diff < 1e-3
    poisoned = torch.full((4, 8), float("nan"), dtype=torch.bfloat16)
    assert not calc_diff(poisoned, torch.zeros(4, 8)) < 1e-3


@pytest.mark.parametrize("c", [2.0, 0.5, -1.0, 1.001, 0.0])
def test_calc_diff_scaled_copy(c):
    # 1 - 2c|x|^2 / ((1 + c^2)|x|^2) = (1 - c)^2 / (1 + c^2), whatever x is.
    x = torch.randn(32, 40, generator=torch.Generator().manual_seed(2)).double()
    expected = (1 - c) ** 2 / (1 + c**2)
    assert calc_diff(x, c * x) == pytest.approx(expected, rel=1e-9, abs=1e-15)
    assert calc_diff(c * x, x) == pytest.approx(expected, rel=1e-9, abs=1e-15)
    assert calc_diff(x, -x) == pytest.approx(2.0)


def test_calc_diff_zeros():
    z = torch.zeros(3, 5)
    assert calc_diff(z, z) == 0.0
    assert calc_diff(z, torch.zeros(3, 5, dtype=torch.bfloat16)) == 0.0
    assert calc_diff(z, -z) == 0.0
    x = torch.ones(3, 5)
    assert calc_diff(z, x) == 1.0 and calc_diff(x, z) == 1.0


@pytest.mark.parametrize("g,m,kb", [(1, 1, 1), (3, 5, 7), (4, 256, 56), (2, 4097, 3)])
def test_transform_batched(g, m, kb):
    sf = torch.rand(g, m, kb)
    out = get_mn_major_tma_aligned_tensor(sf)
    pad = -(-m // 4) * 4
    assert out.shape == (g, m, kb) and torch.equal(out, sf)
    assert out.stride() == (kb * pad, 1, pad) or m == 1
    assert is_tma_aligned_sfa(out) and get_mn_major_tma_aligned_tensor(out) is out
