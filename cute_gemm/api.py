"""The public torch API of cute-gemm: argument checks, configuration choice, launch."""

from __future__ import annotations

import torch

from cute_gemm import device, heuristics, jit
from cute_gemm.quant import ceil_div, get_mn_major_tma_aligned_tensor
from layouts.tiles import SCALE_BLOCK


def _check_tensor(name, t, dtype, rank):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype}, got {t.dtype}")
    if t.dim() != rank:
        raise ValueError(f"{name} must be {rank}-D, got shape {tuple(t.shape)}")


def _check_shape(name, t, expected):
    if tuple(t.shape) != tuple(expected):
        raise ValueError(f"{name} must have shape {list(expected)}, got {list(t.shape)}")


def _check_rows(name, t, row_multiple):
    """K-major / N-major 2-D operand: unit inner stride, 16-byte-aligned rows and base."""
    if t.numel() == 0:
        return
    if t.shape[1] > 1 and t.stride(1) != 1 or t.shape[0] > 1 and t.stride(0) % row_multiple != 0:
        raise ValueError(
            f"{name} must have unit stride along its last dim and a row stride that is a multiple "
            f"of {row_multiple} elements (16 bytes), got strides {t.stride()}"
        )
    if t.data_ptr() % 16 != 0:
        raise ValueError(f"{name} must start at a 16-byte aligned address")


def _check_same_device(tensors: dict[str, torch.Tensor]):
    first_name, first = next(iter(tensors.items()))
    if first.device.type != "cuda":
        raise ValueError(f"{first_name} must be a CUDA tensor, got device {first.device}")
    for name, t in tensors.items():
        if t.device != first.device:
            raise ValueError(f"{name} is on {t.device} but {first_name} is on {first.device}")


def _byte_span(t: torch.Tensor) -> tuple[int, int]:
    """[first, last) byte addresses a (non-negatively strided) tensor can touch."""
    extent = sum((size - 1) * stride for size, stride in zip(t.shape, t.stride())) + 1
    return t.data_ptr(), t.data_ptr() + extent * t.element_size()


def _check_no_alias(out_name, out, inputs: dict[str, torch.Tensor]):
    if out.numel() == 0:
        return
    lo, hi = _byte_span(out)
    for name, t in inputs.items():
        t_lo, t_hi = _byte_span(t)
        if t.numel() and lo < t_hi and t_lo < hi:
            raise ValueError(f"{out_name} must not overlap {name} in memory")


def fp8_gemm_nt(
    a: tuple[torch.Tensor, torch.Tensor],
    b: tuple[torch.Tensor, torch.Tensor],
    d: torch.Tensor,
    config: jit.GemmConfig | None = None,
) -> torch.Tensor:
    """``d = (a * sfa) @ (b * sfb)^T`` in bf16, with fine-grained FP8 scaling. Writes ``d`` and returns it.

    :param a: ``(a, sfa)``: ``a [m, k]`` float8_e4m3fn (K-major) and ``sfa [m, ceil(k/128)]``
        float32, one scale per row per 128-wide K block (see :func:`per_token_cast_to_fp8`). ``sfa``
        is best passed M-major and TMA-aligned (:func:`get_mn_major_tma_aligned_tensor`); any
        other float32 ``[m, ceil(k/128)]`` tensor is converted first, at the cost of one copy.
    :param b: ``(b, sfb)``: ``b [n, k]`` float8_e4m3fn (K-major) and ``sfb [ceil(n/128),
        ceil(k/128)]`` float32, one scale per 128x128 block (see :func:`per_block_cast_to_fp8`).
    :param d: output ``[m, n]`` bfloat16 (N-major), must not overlap any input.
    :param config: a :class:`cute_gemm.jit.GemmConfig` to force; by default the heuristic chooses.

    Shape rule: any ``m >= 0`` (``m = 0`` returns at once), ``n`` a multiple of 8 and ``k`` a multiple
    of 16 (TMA moves 16-byte rows), ``k`` not necessarily a multiple of 128: the tail block is
    zero-filled. Rows of ``a``, ``b`` and ``d`` may be strided (row stride a multiple of 16 bytes).
    All tensors on the same CUDA device. Violations raise ``TypeError``/``ValueError`` before launch.
    """
    if not isinstance(a, (tuple, list)) or len(a) != 2:
        raise TypeError("a must be a pair (a, sfa)")
    if not isinstance(b, (tuple, list)) or len(b) != 2:
        raise TypeError("b must be a pair (b, sfb)")
    (a, sfa), (b, sfb) = a, b
    _check_tensor("a", a, torch.float8_e4m3fn, 2)
    _check_tensor("b", b, torch.float8_e4m3fn, 2)
    _check_tensor("d", d, torch.bfloat16, 2)
    _check_tensor("sfa", sfa, torch.float32, 2)
    _check_tensor("sfb", sfb, torch.float32, 2)
    m, k = a.shape
    n = b.shape[0]
    if b.shape[1] != k:
        raise ValueError(f"b must be [n, k] with k={k} as in a, got {list(b.shape)}")
    _check_shape("d", d, (m, n))
    if n % 8 != 0:
        raise ValueError(f"n must be a multiple of 8 (16-byte bf16 rows of d), got n={n}")
    if k % 16 != 0:
        raise ValueError(f"k must be a multiple of 16 (16-byte fp8 rows), got k={k}")
    _check_shape("sfa", sfa, (m, ceil_div(k, SCALE_BLOCK)))
    _check_shape("sfb", sfb, (ceil_div(n, SCALE_BLOCK), ceil_div(k, SCALE_BLOCK)))
    _check_rows("a", a, 16)
    _check_rows("b", b, 16)
    _check_rows("d", d, 8)
    if sfb.shape[1] > 1 and sfb.stride(1) != 1:
        raise ValueError(f"sfb must have unit stride along its last dim, got strides {sfb.stride()}")
    _check_same_device({"a": a, "b": b, "d": d, "sfa": sfa, "sfb": sfb})
    _check_no_alias("d", d, {"a": a, "b": b, "sfa": sfa, "sfb": sfb})
    if m == 0 or n == 0:
        return d
    if k == 0:
        return d.zero_()
    sfa = get_mn_major_tma_aligned_tensor(sfa)
    num_sms = device.get_num_sms(d.device.index)
    if config is None:
        config = heuristics.choose_config(m, n, k, num_sms)
    jit.get_fp8_gemm(config)(a, b, d, sfa, sfb, num_sms)
    return d
