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
    sfb: torch.Tensor  # [ceil(n/128), ceil(k/128)] fp32; per-row: [n, ceil(k/128)], N-major aligned
    d: torch.Tensor  # [m, n] bf16 or fp32, filled with NaN
    b_scale_rows: int = 128  # 1: sfb is per row (1x128)
    scale_spread: float = 0.0  # the blocks' magnitudes span 10^[-spread, spread]

    def dequantized_b(self) -> torch.Tensor:
        if self.b_scale_rows == 1:
            return per_token_dequantize(self.b, self.sfb)
        return per_block_dequantize(self.b, self.sfb)

    def dequantized_reference(self) -> torch.Tensor:
        """fp32 product of the dequantised inputs: what the kernel computes, before rounding to d."""
        return per_token_dequantize(self.a, self.sfa) @ self.dequantized_b().t()

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
    m: int, n: int, k: int, device="cuda", seed: int | None = None, scale_spread: float = 0.0,
    b_scale_rows: int = 128, out_dtype: torch.dtype = torch.bfloat16,
) -> Fp8GemmProblem:
    """Fresh random inputs (normal, bf16), quantised DeepSeek-style; ``d`` poisoned with NaN.

    ``scale_spread`` > 0 multiplies each scale block by a factor in ``10^[-spread, spread]`` so the
    blocks' scales differ by orders of magnitude (a wrong scale index then shows up at once).
    ``b_scale_rows=1`` quantises B per row per 128 K (the training recipe) instead of per 128x128
    block; ``out_dtype`` is d's dtype.
    """
    gen = torch.Generator(device=device)
    gen.manual_seed(torch.seed() if seed is None else seed)
    x = torch.randn((m, k), generator=gen, device=device)
    y = torch.randn((n, k), generator=gen, device=device)
    if scale_spread:
        x = x * _block_magnitudes(m, k, 1, scale_spread, gen)
        y = y * _block_magnitudes(n, k, b_scale_rows, scale_spread, gen)
    x, y = x.bfloat16(), y.bfloat16()
    a, sfa = per_token_cast_to_fp8(x)
    if b_scale_rows == 1:
        b, sfb = per_token_cast_to_fp8(y)
        sfb = get_mn_major_tma_aligned_tensor(sfb)
    else:
        b, sfb = per_block_cast_to_fp8(y)
    d = torch.full((m, n), float("nan"), dtype=out_dtype, device=device)
    return Fp8GemmProblem(x, y, a, get_mn_major_tma_aligned_tensor(sfa), b, sfb, d, b_scale_rows, scale_spread)


@dataclass
class GroupedProblem:
    """Per-expert FP8 operands for the grouped GEMMs, with fp32 references per expert."""

    a: torch.Tensor  # contiguous: [M_sum, k]; masked: [G, M_max, k]
    sfa: torch.Tensor  # TMA-aligned, M-major (per expert for masked)
    b: torch.Tensor  # [G, n, k]
    sfb: torch.Tensor  # [G, ceil(n/128), ceil(k/128)]
    d: torch.Tensor  # NaN-poisoned output
    x: torch.Tensor  # unquantised a, same layout
    y: torch.Tensor  # unquantised b [G, n, k]
    rows: list  # contiguous: (start, count) per expert; masked: count per expert
    group_info: torch.Tensor  # m_indices or masked_m (int32, on the device)

    def expert_reference(self, g: int, dequantized: bool = True) -> torch.Tensor:
        """fp32 product of expert ``g``'s valid rows: dequantised FP8 inputs or the bf16 originals."""
        if self.a.dim() == 2:
            start, count = self.rows[g]
            a, sfa, x = self.a[start:start + count], self.sfa[start:start + count], self.x[start:start + count]
        else:
            count = self.rows[g]
            a, sfa, x = self.a[g, :count], self.sfa[g, :count], self.x[g, :count]
        if not dequantized:
            return x.float() @ self.y[g].float().t()
        return per_token_dequantize(a, sfa) @ per_block_dequantize(self.b[g], self.sfb[g]).t()


def _quantize_experts(y: torch.Tensor):
    pairs = [per_block_cast_to_fp8(y[g]) for g in range(y.shape[0])]
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


def make_contiguous_problem(group_rows, n: int, k: int, alignment: int = 128, device="cuda"):
    """Experts with ``group_rows[g]`` tokens each, stacked along M, each padded to ``alignment``.

    Padding rows have ``m_indices = -1`` and zero inputs; ``d`` is poisoned everywhere.
    """
    starts, total = [], 0
    for count in group_rows:
        starts.append(total)
        total += -(-count // alignment) * alignment
    m_indices = torch.full((total,), -1, dtype=torch.int32)
    x = torch.zeros((total, k), dtype=torch.bfloat16, device=device)
    for g, (start, count) in enumerate(zip(starts, group_rows)):
        m_indices[start:start + count] = g
        x[start:start + count] = torch.randn((count, k), device=device).bfloat16()
    y = torch.randn((len(group_rows), n, k), device=device).bfloat16()
    a, sfa = per_token_cast_to_fp8(x)
    b, sfb = _quantize_experts(y)
    d = torch.full((total, n), float("nan"), dtype=torch.bfloat16, device=device)
    return GroupedProblem(
        a, get_mn_major_tma_aligned_tensor(sfa), b, sfb, d, x, y,
        list(zip(starts, group_rows)), m_indices.to(device),
    )


def make_masked_problem(masked_m, m_max: int, n: int, k: int, device="cuda"):
    """``[G, M_max, k]`` inputs (random in every row), ``masked_m`` on the device, ``d`` poisoned."""
    num_groups = len(masked_m)
    x = torch.randn((num_groups, m_max, k), device=device).bfloat16()
    y = torch.randn((num_groups, n, k), device=device).bfloat16()
    pairs = [per_token_cast_to_fp8(x[g]) for g in range(num_groups)]
    a = torch.stack([p[0] for p in pairs])
    sfa = get_mn_major_tma_aligned_tensor(torch.stack([p[1] for p in pairs]))
    b, sfb = _quantize_experts(y)
    d = torch.full((num_groups, m_max, n), float("nan"), dtype=torch.bfloat16, device=device)
    info = torch.tensor(list(masked_m), dtype=torch.int32, device=device)
    return GroupedProblem(a, sfa, b, sfb, d, x, y, list(masked_m), info)


@dataclass
class KGroupedProblem:
    """The k-grouped (weight-gradient) GEMM: experts stacked along K, 1x128 scales on both sides."""

    x: torch.Tensor  # [m, K_sum] bf16
    y: torch.Tensor  # [n, K_sum] bf16
    a: torch.Tensor  # [m, K_sum] fp8
    sfa: torch.Tensor  # [m, K_sum/128], M-major aligned
    b: torch.Tensor  # [n, K_sum] fp8
    sfb: torch.Tensor  # [n, K_sum/128], N-major aligned
    ks: list  # tokens per expert (multiples of 128)
    d: torch.Tensor  # [G, m, n] fp32, NaN-poisoned

    def expert_reference(self, g: int, dequantized: bool = True) -> torch.Tensor:
        """fp32 ``a_g @ b_g^T`` over expert ``g``'s K columns (zeros for an empty expert)."""
        k0, k1 = sum(self.ks[:g]), sum(self.ks[:g + 1])
        if not dequantized:
            return self.x[:, k0:k1].float() @ self.y[:, k0:k1].float().t()
        b0, b1 = k0 // SCALE_BLOCK, k1 // SCALE_BLOCK
        a = per_token_dequantize(self.a[:, k0:k1], self.sfa[:, b0:b1])
        b = per_token_dequantize(self.b[:, k0:k1], self.sfb[:, b0:b1])
        return a @ b.t()


def make_k_grouped_problem(ks, m: int, n: int, device="cuda") -> KGroupedProblem:
    """Random ``[m, sum(ks)]`` and ``[n, sum(ks)]`` inputs quantised per row per 128 K (each expert's
    columns start on a 128 boundary, so no scale block straddles two experts); ``d`` poisoned."""
    k_sum = sum(ks)
    x = torch.randn((m, k_sum), device=device).bfloat16()
    y = torch.randn((n, k_sum), device=device).bfloat16()
    a, sfa = per_token_cast_to_fp8(x)
    b, sfb = per_token_cast_to_fp8(y)
    d = torch.full((len(ks), m, n), float("nan"), device=device)
    return KGroupedProblem(x, y, a, get_mn_major_tma_aligned_tensor(sfa), b,
                           get_mn_major_tma_aligned_tensor(sfb), list(ks), d)


def random_expert_ks(num_groups: int, expected_k: int, seed: int, empty: int | None = None) -> list:
    """Tokens per expert, uniform in ``[0.7, 1.3] x expected_k`` rounded up to 128; expert
    ``empty`` (if given) gets none."""
    gen = torch.Generator().manual_seed(seed)
    ks = []
    for g in range(num_groups):
        k = int(expected_k * (0.7 + 0.6 * torch.rand((), generator=gen).item()))
        ks.append(0 if g == empty else -(-k // SCALE_BLOCK) * SCALE_BLOCK)
    return ks
