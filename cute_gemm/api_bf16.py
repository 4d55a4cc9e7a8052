"""The public torch API of the BF16 GEMMs: the FP8 kernel's roles, pipelines and scheduler with
bf16 operands and no scales (:class:`cute_gemm.kernels.bf16_gemm_sm90.Bf16GemmSm90`).

Names follow DeepGEMM: the first letter is A's storage (``n``: ``[m, k]``, ``t``: ``[k, m]``), the
second B's (``t``: ``[n, k]``, ``n``: ``[k, n]``); ``d = a @ b`` in the stored orientation.

Same argument checks, shapes and layouts as the FP8 functions in :mod:`cute_gemm.api`, without the
scale tensors: operands are plain bf16 tensors, K-major (NT); rows of A, B and D are 16 bytes
aligned (``k`` and ``n`` multiples of 8).
"""

from __future__ import annotations

import torch

from cute_gemm import device, heuristics, jit
from cute_gemm.api import (
    _check_accumulator,
    _check_kind,
    _check_nk,
    _check_output,
    _check_placement,
    _check_rows,
    _check_shape,
    _check_tensor,
    _check_variant,
    _experts_last,
    _fill_without_product,
    _same_view,
)
from schedulers.raster import GemmKind

_BF16_ROW = 8  # elements in 16 bytes


def _variant(out_dtype: str, accumulate: bool = False, a_major: str = "k", b_major: str = "k"):
    return heuristics.Variant(128, out_dtype, accumulate, "bf16", a_major, b_major)


_DOC_RULES = """
    :param d: output ``[m, n]`` bfloat16 or float32, N-major, not overlapping ``a`` or ``b``.
    :param c: optional float32 ``[m, n]`` (``d`` float32): ``d = c + ...``; ``c`` may be ``d``
        (in place, TMA reduce-add), any other ``c`` is copied into ``d`` first.
    :param config: a ``GemmConfig`` with ``ab_dtype="bf16"`` and the call's majors to force.

    Every operand has a unit-stride last dim and 16-byte aligned rows (``m``, ``n``, ``k`` multiples
    of 8 where they are an operand's last dim; ``n`` always); ``k`` need not be a multiple of 64.
"""


def bf16_gemm_nt(a, b, d, c=None, config=None):
    """``d = [c +] a @ b^T``: ``a [m, k]``, ``b [n, k]`` bfloat16 (both K-major), fp32 accumulation."""
    return _bf16_gemm(a, b, d, c, config, "k", "k")


def bf16_gemm_nn(a, b, d, c=None, config=None):
    """``d = [c +] a @ b``: ``a [m, k]``, ``b [k, n]`` bfloat16 (B N-major)."""
    return _bf16_gemm(a, b, d, c, config, "k", "mn")


def bf16_gemm_tn(a, b, d, c=None, config=None):
    """``d = [c +] a^T @ b``: ``a [k, m]``, ``b [k, n]`` bfloat16 (both MN-major; e.g. a weight
    gradient from activations stored token-major)."""
    return _bf16_gemm(a, b, d, c, config, "mn", "mn")


def bf16_gemm_tt(a, b, d, c=None, config=None):
    """``d = [c +] a^T @ b^T``: ``a [k, m]`` (A M-major), ``b [n, k]`` bfloat16."""
    return _bf16_gemm(a, b, d, c, config, "mn", "k")


for _f in (bf16_gemm_nt, bf16_gemm_nn, bf16_gemm_tn, bf16_gemm_tt):
    _f.__doc__ += _DOC_RULES


def _bf16_gemm(a, b, d, c, config, a_major: str, b_major: str) -> torch.Tensor:
    """The four layouts: ``a``/``b`` as given (``[m, k]``/``[n, k]`` when K-major, ``[k, m]``/
    ``[k, n]`` when MN-major); the kernel sees ``(m, k)`` and ``(n, k)`` views of them."""
    _check_tensor("a", a, torch.bfloat16, 2)
    _check_tensor("b", b, torch.bfloat16, 2)
    a_mk = a if a_major == "k" else a.t()
    b_nk = b if b_major == "k" else b.t()
    (m, k), n = a_mk.shape, b_nk.shape[0]
    if b_nk.shape[1] != k:
        form = "[n, k]" if b_major == "k" else "[k, n]"
        raise ValueError(f"b must be {form} with k={k} as in a, got {list(b.shape)}")
    out_dtype = _check_output("d", d, 2)
    _check_shape("d", d, (m, n))
    _check_nk(n, k, torch.bfloat16)
    _check_rows("a", a, _BF16_ROW)
    _check_rows("b", b, _BF16_ROW)
    _check_rows("d", d, 16 // d.element_size())
    if c is not None:
        _check_accumulator(c, d)
        if out_dtype != "fp32":
            raise TypeError(f"d must have dtype torch.float32 when c is given, got {d.dtype}")
    _check_placement({"a": a, "b": b, "d": d})
    if m == 0 or n == 0:
        return d
    if k == 0:
        _fill_without_product(d, c)
        return d
    num_sms = device.get_num_sms(d.device.index)
    variant = _variant(out_dtype, c is not None, a_major, b_major)
    if config is None:
        config = heuristics.choose_config(m, n, k, num_sms, variant)
    _check_variant(config, variant)
    if c is not None and not _same_view(c, d):
        d.copy_(c)
    jit.get_fp8_gemm(config)(a_mk, b_nk, d, num_sms)
    return d


def _check_grouped_b(b: torch.Tensor, k: int) -> tuple[int, int]:
    """``b [G, n, k]`` bf16; returns ``(G, n)``."""
    _check_tensor("b", b, torch.bfloat16, 3)
    num_groups, n = b.shape[0], b.shape[1]
    if b.shape[2] != k:
        raise ValueError(f"b must be [G, n, k] with k={k} as in a, got {list(b.shape)}")
    _check_nk(n, k, torch.bfloat16)
    _check_rows("b", b, _BF16_ROW)
    return num_groups, n


def m_grouped_bf16_gemm_nt_contiguous(
    a: torch.Tensor, b: torch.Tensor, d: torch.Tensor, m_indices: torch.Tensor,
    config: jit.GemmConfig | None = None,
) -> torch.Tensor:
    """MoE GEMM over experts stacked along M, bf16: ``d[r] = a[r] @ b[m_indices[r]]^T``.

    :param a: ``[M_sum, k]`` bfloat16; :param b: ``[G, n, k]`` bfloat16; :param d: ``[M_sum, n]``
    bfloat16; :param m_indices: int32 ``[M_sum]``, as for
    :func:`cute_gemm.m_grouped_fp8_gemm_nt_contiguous` (``-1`` rows are skipped, not written).
    """
    _check_tensor("a", a, torch.bfloat16, 2)
    _check_tensor("d", d, torch.bfloat16, 2)
    _check_tensor("m_indices", m_indices, torch.int32, 1)
    m_sum, k = a.shape
    num_groups, n = _check_grouped_b(b, k)
    _check_shape("d", d, (m_sum, n))
    _check_shape("m_indices", m_indices, (m_sum,))
    _check_rows("a", a, _BF16_ROW)
    _check_rows("d", d, _BF16_ROW)
    if m_indices.numel() > 1 and m_indices.stride(0) != 1:
        raise ValueError("m_indices must be contiguous")
    tensors = {"a": a, "b": b, "d": d, "m_indices": m_indices}
    _check_placement(tensors)
    if m_sum == 0 or n == 0 or num_groups == 0:
        return d
    if k == 0:
        return d.zero_()
    num_sms = device.get_num_sms(d.device.index)
    kind = GemmKind.M_GROUPED_CONTIGUOUS
    if config is None:
        config = heuristics.choose_grouped_config(kind, m_sum, 1, n, k, num_sms, _variant("bf16"))
    _check_kind(config, kind)
    _check_variant(config, _variant("bf16"))
    jit.get_fp8_gemm(config)(a, _experts_last(b), d, m_indices, num_sms)
    return d


def m_grouped_bf16_gemm_nt_masked(
    a: torch.Tensor, b: torch.Tensor, d: torch.Tensor, masked_m: torch.Tensor, expected_m: int,
    config: jit.GemmConfig | None = None,
) -> torch.Tensor:
    """MoE GEMM per expert with device-side row counts, bf16: ``d[g, :masked_m[g]] = a[g] @ b[g]^T``.

    :param a: ``[G, M_max, k]`` bfloat16; :param b: ``[G, n, k]``; :param d: ``[G, M_max, n]``
    bfloat16 (rows past ``masked_m[g]`` untouched); ``masked_m`` and ``expected_m`` as for
    :func:`cute_gemm.m_grouped_fp8_gemm_nt_masked` (capturable in a CUDA graph).
    """
    _check_tensor("a", a, torch.bfloat16, 3)
    _check_tensor("d", d, torch.bfloat16, 3)
    _check_tensor("masked_m", masked_m, torch.int32, 1)
    if isinstance(expected_m, bool) or not isinstance(expected_m, int) or expected_m <= 0:
        raise ValueError(f"expected_m must be a positive int, got {expected_m!r}")
    num_groups, m_max, k = a.shape
    g_b, n = _check_grouped_b(b, k)
    if g_b != num_groups:
        raise ValueError(f"b must have G={num_groups} experts as a, got {g_b}")
    _check_shape("d", d, (num_groups, m_max, n))
    _check_shape("masked_m", masked_m, (num_groups,))
    _check_rows("a", a, _BF16_ROW)
    _check_rows("d", d, _BF16_ROW)
    tensors = {"a": a, "b": b, "d": d, "masked_m": masked_m}
    _check_placement(tensors)
    if num_groups == 0 or m_max == 0 or n == 0:
        return d
    if k == 0:
        raise ValueError("k must be positive for the masked GEMM (rows past masked_m stay untouched)")
    num_sms = device.get_num_sms(d.device.index)
    kind = GemmKind.M_GROUPED_MASKED
    if config is None:
        config = heuristics.choose_grouped_config(
            kind, min(expected_m, m_max), num_groups, n, k, num_sms, _variant("bf16"))
    _check_kind(config, kind)
    _check_variant(config, _variant("bf16"))
    jit.get_fp8_gemm(config)(_experts_last(a), _experts_last(b), _experts_last(d), masked_m, num_sms)
    return d
