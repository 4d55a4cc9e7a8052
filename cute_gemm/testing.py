"""Inputs and references for correctness checks (used by the tests, the demo and the benchmark)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cute_gemm.quant import (
    get_mn_major_tma_aligned_tensor,
    per_block_cast_to_fp8,
    per_block_dequantize,
    per_token_cast_to_fp8,
    per_token_dequantize,
)
from layouts.tiles import SCALE_BLOCK


@dataclass
class Fp8GemmProblem:
    """One dense problem: unquantised inputs, their FP8 forms and a poisoned output."""

    x: torch.Tensor  # [m, k] bf16
    y: torch.Tensor  # [n, k] bf16
    a: torch.Tensor  # [m, k] fp8
    sfa: torch.Tensor  # [m, ceil(k/128)] fp32, M-major TMA-aligned
    b: torch.Tensor  # [n, k] fp8
    sfb: torch.Tensor  # [ceil(n/128), ceil(k/128)] fp32
    d: torch.Tensor  # [m, n] bf16, filled with NaN

    def dequantized_reference(self) -> torch.Tensor:
        """fp32 product of the dequantised inputs: what the kernel computes, before bf16 rounding."""
        return per_token_dequantize(self.a, self.sfa) @ per_block_dequantize(self.b, self.sfb).t()

    def unquantized_reference(self) -> torch.Tensor:
        """fp32 product of the bf16 inputs before quantisation."""
        return self.x.float() @ self.y.float().t()


def _block_magnitudes(rows: int, cols: int, row_block: int, spread: float, gen) -> torch.Tensor:
    """A ``[rows, cols]`` multiplier, constant per (row_block x 128) block, log-uniform in 10^+-spread."""
    rb, cb = -(-rows // row_block), -(-cols // SCALE_BLOCK)
    exps = (torch.rand((rb, cb), generator=gen, device=gen.device) * 2 - 1) * spread
    mags = torch.pow(10.0, exps)
    return mags.repeat_interleave(row_block, 0).repeat_interleave(SCALE_BLOCK, 1)[:rows, :cols]


def make_fp8_gemm_problem(
    m: int, n: int, k: int, device="cuda", seed: int | None = None, scale_spread: float = 0.0
) -> Fp8GemmProblem:
    """Fresh random inputs (normal, bf16), quantised DeepSeek-style; ``d`` poisoned with NaN.

    ``scale_spread`` > 0 multiplies each scale block by a factor in ``10^[-spread, spread]`` so the
    blocks' scales differ by orders of magnitude (a wrong scale index then shows up at once).
    """
    gen = torch.Generator(device=device)
    gen.manual_seed(torch.seed() if seed is None else seed)
    x = torch.randn((m, k), generator=gen, device=device)
    y = torch.randn((n, k), generator=gen, device=device)
    if scale_spread:
        x = x * _block_magnitudes(m, k, 1, scale_spread, gen)
        y = y * _block_magnitudes(n, k, SCALE_BLOCK, scale_spread, gen)
    x, y = x.bfloat16(), y.bfloat16()
    a, sfa = per_token_cast_to_fp8(x)
    b, sfb = per_block_cast_to_fp8(y)
    d = torch.full((m, n), float("nan"), dtype=torch.bfloat16, device=device)
    return Fp8GemmProblem(x, y, a, get_mn_major_tma_aligned_tensor(sfa), b, sfb, d)
