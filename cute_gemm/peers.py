"""The peers cute-gemm is measured against, called the way torch exposes them.

- ``cublas_blockwise``: cuBLAS's 1x128/128x128 (or 1x128/1x128, training) blockwise-scaled FP8 GEMM
  (same semantics as ours) through ``torch.nn.functional.scaled_mm``; ``None`` when the installed
  torch lacks it. A call cuBLAS refuses raises: the benchmark reports the peer n/a with the reason.
- ``cublas_per_tensor``: cuBLAS FP8 with one scale per tensor (a simpler problem), ``torch._scaled_mm``.
- ``torch_bf16``: ``torch.matmul`` in bf16.
- ``torch_grouped_rowwise``: torch's grouped FP8 GEMM (``torch._scaled_grouped_mm``, one scale per
  row of A and per row of B: coarser than ours) for the MoE suites; ``None`` when absent or refused.

Never use these as a correctness reference: cuBLAS's blockwise path is silently wrong on some shapes
(see docs/notes.md); every peer result is itself checked against our fp32 reference.
"""

from __future__ import annotations

import torch


def cublas_blockwise(a, sfa, b, sfb, b_scale_rows: int = 128, out_dtype=torch.bfloat16):
    """A callable computing the blockwise-scaled product with cuBLAS, or None if torch lacks the API.

    ``sfa``: 1x128, ``[m, k/128]`` M-major as ours. ``sfb``: 128x128 blocks ``[n/128, k/128]``
    (``b_scale_rows=128``) or 1x128 ``[n, k/128]`` N-major as ours (``b_scale_rows=1``, the training
    recipe). cuBLAS refuses some shapes (e.g. K blocks not a multiple of 4), output dtypes and
    recipes: the callable then raises.
    """
    F = torch.nn.functional
    if not hasattr(F, "scaled_mm") or not hasattr(F, "ScalingType"):
        return None
    if b_scale_rows == 1:
        scale_b, recipe_b = sfb, F.ScalingType.BlockWise1x128
    else:
        scale_b, recipe_b = sfb.t(), F.ScalingType.BlockWise128x128

    def run():
        return F.scaled_mm(
            a, b.t(), sfa, F.ScalingType.BlockWise1x128, scale_b, recipe_b,
            swizzle_a=F.SwizzleType.NO_SWIZZLE, swizzle_b=F.SwizzleType.NO_SWIZZLE,
            output_dtype=out_dtype,
        )

    return run


def per_tensor_cast(x):
    """``x`` as fp8 with one fp32 scale for the whole tensor: ``(x_fp8, scale)``."""
    scale = x.abs().amax().float().clamp(min=1e-4) / 448.0
    return (x.float() / scale).to(torch.float8_e4m3fn), scale


def cublas_per_tensor(a, scale_a, b, scale_b, out_dtype=torch.bfloat16):
    """cuBLAS FP8 GEMM with per-tensor scales (inputs from :func:`per_tensor_cast`), ``out_dtype`` out."""
    return lambda: torch._scaled_mm(a, b.t(), scale_a=scale_a, scale_b=scale_b, out_dtype=out_dtype)


def torch_bf16(x, y):
    return lambda: torch.matmul(x, y.t())


def rowwise_cast(x):
    """``x`` (``[..., rows, k]``) as fp8 with one fp32 scale per row: ``(x_fp8, scale [..., rows])``."""
    scale = x.abs().amax(dim=-1, keepdim=True).float().clamp(min=1e-4) / 448.0
    return (x.float() / scale).to(torch.float8_e4m3fn), scale.squeeze(-1).contiguous()


def torch_grouped_rowwise(a, scale_a, b, scale_b, offs=None):
    """A callable for torch's grouped FP8 GEMM, or None if the installed torch lacks or refuses it.

    ``a``: ``[M_sum, K]`` with ``offs`` (int32 ``[G]`` cumulative row ends), or ``[G, M, K]``;
    ``b``: ``[G, N, K]``; scales from :func:`rowwise_cast`.
    """
    grouped_mm = getattr(torch, "_scaled_grouped_mm", None)
    if grouped_mm is None:
        return None

    def run():
        return grouped_mm(a, b.transpose(-2, -1), scale_a, scale_b, offs=offs, out_dtype=torch.bfloat16)

    try:
        run()
    except Exception:  # not built for this GPU, or a layout it does not take
        return None
    return run
