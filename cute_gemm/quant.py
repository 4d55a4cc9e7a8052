"""FP8 quantisation helpers and the accuracy metric (plain torch; any device).

The recipes are DeepSeek-V3's: activations per token per 128 channels (1x128), weights per 128x128
block, e4m3 with the block's absolute maximum mapped to 448.
"""

from __future__ import annotations

import torch

from layouts.scales import tma_aligned_rows
from layouts.tiles import SCALE_BLOCK

FP8_MAX = 448.0
_AMAX_FLOOR = 1e-4


def ceil_div(a: int, b: int) -> int:
    return (a + b - 1) // b


def per_token_cast_to_fp8(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantise ``x [m, k]`` per row per 128 columns.

    Returns ``(x_fp8 [m, k] float8_e4m3fn, sf [m, ceil(k/128)] float32)`` with
    ``x ~= x_fp8 * sf`` broadcast over each 128-column block. ``k`` need not be a multiple of 128.
    """
    if x.dim() != 2:
        raise ValueError(f"x must be 2-D [m, k], got shape {tuple(x.shape)}")
    m, k = x.shape
    kb = ceil_div(k, SCALE_BLOCK)
    padded = torch.zeros((m, kb * SCALE_BLOCK), dtype=torch.float32, device=x.device)
    padded[:, :k] = x
    view = padded.view(m, kb, SCALE_BLOCK)
    amax = view.abs().amax(dim=2).clamp(min=_AMAX_FLOOR)
    sf = amax / FP8_MAX
    x_fp8 = (view / sf.unsqueeze(2)).to(torch.float8_e4m3fn).view(m, kb * SCALE_BLOCK)[:, :k]
    return x_fp8.contiguous(), sf


def per_block_cast_to_fp8(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantise ``x [n, k]`` per 128x128 block.

    Returns ``(x_fp8 [n, k] float8_e4m3fn, sf [ceil(n/128), ceil(k/128)] float32)``.
    """
    if x.dim() != 2:
        raise ValueError(f"x must be 2-D [n, k], got shape {tuple(x.shape)}")
    n, k = x.shape
    nb, kb = ceil_div(n, SCALE_BLOCK), ceil_div(k, SCALE_BLOCK)
    padded = torch.zeros((nb * SCALE_BLOCK, kb * SCALE_BLOCK), dtype=torch.float32, device=x.device)
    padded[:n, :k] = x
    view = padded.view(nb, SCALE_BLOCK, kb, SCALE_BLOCK)
    amax = view.abs().amax(dim=(1, 3)).clamp(min=_AMAX_FLOOR)
    sf = amax / FP8_MAX
    x_fp8 = (view / sf[:, None, :, None]).to(torch.float8_e4m3fn)
    x_fp8 = x_fp8.view(nb * SCALE_BLOCK, kb * SCALE_BLOCK)[:n, :k]
    return x_fp8.contiguous(), sf


def per_token_dequantize(x_fp8: torch.Tensor, sf: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`per_token_cast_to_fp8` in fp32: ``[m, k]``."""
    k = x_fp8.shape[1]
    return x_fp8.float() * sf.float().repeat_interleave(SCALE_BLOCK, dim=1)[:, :k]


def per_block_dequantize(x_fp8: torch.Tensor, sf: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`per_block_cast_to_fp8` in fp32: ``[n, k]``."""
    n, k = x_fp8.shape
    full = sf.float().repeat_interleave(SCALE_BLOCK, dim=0).repeat_interleave(SCALE_BLOCK, dim=1)
    return x_fp8.float() * full[:n, :k]


def is_tma_aligned_sfa(sf: torch.Tensor) -> bool:
    """True if ``sf [(g,) m, kb]`` is M-major with a 16-byte-aligned column stride (what TMA loads)."""
    m = sf.shape[-2]
    col_stride_ok = sf.stride(-1) % 4 == 0 and sf.stride(-1) >= m
    batch_ok = sf.dim() == 2 or sf.stride(0) % 4 == 0
    return (sf.stride(-2) == 1 or m == 1) and col_stride_ok and batch_ok and sf.data_ptr() % 16 == 0


def get_mn_major_tma_aligned_tensor(sf: torch.Tensor) -> torch.Tensor:
    """The TMA-aligned scale transform: ``sf [m, kb]`` (or ``[g, m, kb]``) as an M-major tensor.

    The result has the same shape and values, with strides ``(1, round_up(m, 4))`` (batched:
    ``(kb * round_up(m, 4), 1, round_up(m, 4))``): each K block's ``m`` scales are contiguous and
    start 16-byte aligned. Already-aligned input is returned as is (no copy).
    """
    if sf.dim() not in (2, 3) or sf.dtype != torch.float32:
        raise ValueError(
            f"sf must be a float32 tensor [m, kb] or [g, m, kb], got {sf.dtype} {tuple(sf.shape)}"
        )
    if is_tma_aligned_sfa(sf):
        return sf
    m, kb = sf.shape[-2:]
    batch = sf.shape[:-2]
    storage = torch.empty((*batch, kb, tma_aligned_rows(m)), dtype=sf.dtype, device=sf.device)
    storage[..., :m] = sf.transpose(-1, -2)
    return storage[..., :m].transpose(-1, -2)


def calc_diff(x: torch.Tensor, y: torch.Tensor) -> float:
    """DeepGEMM's similarity error ``1 - 2 sum(xy) / sum(x^2 + y^2)`` in float64 (0 = identical).

    NaN anywhere makes the result NaN, so a poisoned, unwritten output never passes a threshold.
    """
    x, y = x.double(), y.double()
    denominator = (x * x + y * y).sum()
    if denominator == 0:
        return 0.0 if torch.equal(x, y) else 1.0
    return float(1 - 2 * (x * y).sum() / denominator)
