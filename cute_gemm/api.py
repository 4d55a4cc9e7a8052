"""The public torch API of cute-gemm: argument checks, configuration choice, launch."""

from __future__ import annotations

from typing import NamedTuple

import torch

from cute_gemm import device, heuristics, jit
from cute_gemm.quant import ceil_div, get_mn_major_tma_aligned_tensor, is_tma_aligned_sfa
from layouts.tiles import SCALE_BLOCK
from schedulers.raster import GemmKind


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
    """K-major / N-major operand: unit inner stride, 16-byte-aligned rows (and batches) and base."""
    if t.numel() == 0:
        return
    inner_ok = t.shape[-1] == 1 or t.stride(-1) == 1
    outer_ok = all(size == 1 or stride % row_multiple == 0 for size, stride in zip(t.shape[:-1], t.stride()[:-1]))
    if not (inner_ok and outer_ok):
        raise ValueError(
            f"{name} must have unit stride along its last dim and other strides that are multiples "
            f"of {row_multiple} elements (16 bytes), got strides {t.stride()}"
        )
    if t.data_ptr() % 16 != 0:
        raise ValueError(f"{name} must start at a 16-byte aligned address")


def _check_same_device(tensors: dict[str, torch.Tensor]):
    """Every tensor a CUDA tensor on one device; the error names the tensor that is elsewhere."""
    for name, t in tensors.items():
        if t.device.type != "cuda":
            raise ValueError(f"{name} must be a CUDA tensor, got device {t.device}")
    devices = [t.device for t in tensors.values()]
    common = max(devices, key=devices.count)  # the device most of them are on (the first on a tie)
    for name, t in tensors.items():
        if t.device != common:
            others = [n for n, u in tensors.items() if u.device == common]
            verb = "is" if len(others) == 1 else "are"
            raise ValueError(f"{name} is on {t.device} but {', '.join(others)} {verb} on {common}")


def _byte_extent(t: torch.Tensor) -> int:
    """Bytes from ``data_ptr`` a (non-negatively strided) tensor can touch; 0 if empty."""
    if t.numel() == 0:
        return 0
    return (sum((size - 1) * stride for size, stride in zip(t.shape, t.stride())) + 1) * t.element_size()


def _byte_span(t: torch.Tensor) -> tuple[int, int]:
    """[first, last) byte addresses a (non-negatively strided) tensor can touch."""
    return t.data_ptr(), t.data_ptr() + _byte_extent(t)


def _check_no_alias(out_name, out, inputs: dict[str, torch.Tensor]):
    if out.numel() == 0:
        return
    lo, hi = _byte_span(out)
    for name, t in inputs.items():
        t_lo, t_hi = _byte_span(t)
        if t.numel() and lo < t_hi and t_lo < hi:
            raise ValueError(f"{out_name} must not overlap {name} in memory")


def _check_placement(tensors: dict[str, torch.Tensor]):
    """Every tensor on one CUDA device, and the output ``d`` overlapping none of the others."""
    _check_same_device(tensors)
    _check_no_alias("d", tensors["d"], {name: t for name, t in tensors.items() if name != "d"})


def _check_nt_operands(a, b, dtype, k_name: str = "k") -> tuple[int, int, int]:
    """``a [m, k]`` and ``b [n, k]`` of ``dtype``; returns ``(m, n, k)``."""
    _check_tensor("a", a, dtype, 2)
    _check_tensor("b", b, dtype, 2)
    m, k = a.shape
    if b.shape[1] != k:
        raise ValueError(f"b must be [n, {k_name}] with {k_name}={k} as in a, got {list(b.shape)}")
    return m, b.shape[0], k


def _unpack_pairs(a, b):
    if not isinstance(a, (tuple, list)) or len(a) != 2:
        raise TypeError("a must be a pair (a, sfa)")
    if not isinstance(b, (tuple, list)) or len(b) != 2:
        raise TypeError("b must be a pair (b, sfb)")
    return a, b


def _check_nk(n, k, operand_dtype: torch.dtype = torch.float8_e4m3fn):
    """TMA moves 16-byte rows: of d (``n``) and of the K-major operands (``k``)."""
    if n % 8 != 0:
        raise ValueError(f"n must be a multiple of 8 (16-byte bf16 rows of d), got n={n}")
    per_row = 16 // operand_dtype.itemsize
    name = "fp8" if operand_dtype.itemsize == 1 else "bf16"
    if k % per_row != 0:
        raise ValueError(f"k must be a multiple of {per_row} (16-byte {name} rows), got k={k}")


def _experts_last(t: torch.Tensor) -> torch.Tensor:
    """``[G, rows, cols]`` viewed as ``(rows, cols, G)``, the kernels' mode order (no copy)."""
    return t.permute(1, 2, 0)


def fp8_gemm_nt(
    a: tuple[torch.Tensor, torch.Tensor],
    b: tuple[torch.Tensor, torch.Tensor],
    d: torch.Tensor,
    c: torch.Tensor | None = None,
    config: jit.GemmConfig | None = None,
) -> torch.Tensor:
    """``d = [c +] (a * sfa) @ (b * sfb)^T`` with fine-grained FP8 scaling. Writes ``d`` and returns it.

    :param a: ``(a, sfa)``: ``a [m, k]`` float8_e4m3fn (K-major) and ``sfa [m, ceil(k/128)]``
        float32, one scale per row per 128-wide K block (see :func:`per_token_cast_to_fp8`). ``sfa``
        is best passed M-major and TMA-aligned (:func:`get_mn_major_tma_aligned_tensor`); any
        other float32 ``[m, ceil(k/128)]`` tensor is converted first, at the cost of one copy.
    :param b: ``(b, sfb)``: ``b [n, k]`` float8_e4m3fn (K-major) and either ``sfb [ceil(n/128),
        ceil(k/128)]`` float32, one scale per 128x128 block (inference weights, see
        :func:`per_block_cast_to_fp8`), or ``sfb [n, ceil(k/128)]``, one scale per row per 128 K
        (1x128, the training recipe for weight gradients: :func:`per_token_cast_to_fp8` of b),
        best N-major and TMA-aligned like ``sfa`` (else converted, one copy).
    :param d: output ``[m, n]`` bfloat16 or float32 (N-major), must not overlap any input.
    :param c: optional float32 ``[m, n]`` to add the product to (``d`` must then be float32):
        ``d = c + a @ b^T``. ``c`` may be ``d`` itself (in-place accumulation, one kernel: the tile
        is added to ``d`` by TMA reduce-add); any other ``c`` is first copied into ``d`` (one
        device copy) and must not overlap ``d``.
    :param config: a :class:`cute_gemm.jit.GemmConfig` to force; by default the heuristic chooses.
        Its ``b_scale_rows``, ``out_dtype`` and ``accumulate`` must match the call.

    Shape rule: any ``m >= 0`` (``m = 0`` returns at once), ``n`` a multiple of 8 and ``k`` a multiple
    of 16 (TMA moves 16-byte rows), ``k`` not necessarily a multiple of 128: the tail block is
    zero-filled. Rows of ``a``, ``b`` and ``d`` may be strided (row stride a multiple of 16 bytes).
    All tensors on the same CUDA device. Violations raise ``TypeError``/``ValueError`` before launch.
    Results are bit-identical run to run (no split-K; where the last M tile moves up to end at
    row ``m``, the rows it shares with the tile above are written twice with the same values).
    """
    if c is not None:
        return _fp8_gemm_nt_checked(a, b, d, c, config)
    # The fast path, for a warm layout: the launcher prepared for these shapes of a and b, then
    # its layout (everything else the checks of _plan_dense depend on: pair types, tensor types,
    # strides, dtypes, devices, the other shapes, config, SM override) compared with this call's,
    # then only the checks that depend on the data pointers (16-byte alignment, d overlapping an
    # input). Anything else (a new layout, a misaligned pointer, an overlap, a malformed argument)
    # takes the checked path, which raises the precise error, or plans, converts and launches.
    # Contiguous a, b, sfb and d have ``True`` in place of their strides: a launcher exists only
    # for non-empty problems, where contiguity fixes every stride the checks read (size-1 dims are
    # exempt from them). _launch_key builds the same key for registration (the tests keep the two
    # in step). Two layouts that share the shapes of a and b alternate through the exact dict.
    try:
        (x, sx), (y, sy) = a, b
        layout = (
            a.__class__, b.__class__,
            x.__class__, x.is_contiguous() or x.stride(), x.dtype, x.device,
            sx.__class__, sx.shape, sx.stride(), sx.dtype, sx.device,
            y.__class__, y.is_contiguous() or y.stride(), y.dtype, y.device,
            sy.__class__, sy.shape, sy.is_contiguous() or sy.stride(), sy.dtype, sy.device,
            d.__class__, d.shape, d.is_contiguous() or d.stride(), d.dtype, d.device,
            config, device._num_sms_override,
        )
        shapes = x.shape, y.shape
        launcher = _recent_launchers[shapes]
        if launcher[0] != layout:
            launcher = _launchers[shapes, layout]
        _, fn, num_sms, span_a, span_sfa, span_b, span_sfb, span_d = launcher
        pa, psa, pb, psb = x.data_ptr(), sx.data_ptr(), y.data_ptr(), sy.data_ptr()
        pd = d.data_ptr()
    except Exception:
        return _fp8_gemm_nt_checked(a, b, d, None, config)
    end_d = pd + span_d
    if (
        (pa | psa | pb | pd) & 15
        or (pa < end_d and pd < pa + span_a)
        or (psa < end_d and pd < psa + span_sfa)
        or (pb < end_d and pd < pb + span_b)
        or (psb < end_d and pd < psb + span_sfb)
    ):
        return _fp8_gemm_nt_checked(a, b, d, None, config)
    fn(x, y, d, sx, sy, num_sms)
    return d


def _fp8_gemm_nt_checked(a, b, d, c, config):
    """:func:`fp8_gemm_nt` with every check spelled out: the plan of the layout (created and
    cached on first sight, all layout checks), then the pointer checks, then the launch. A launch
    without ``c`` whose scales need no conversion registers the plan's launcher for the fast path."""
    if c is not None and isinstance(d, torch.Tensor):
        _check_accumulator(c, d)
    key = _layout_key((a, b, d), config, c is not None)
    plan = _dense_plans.get(key)
    if plan is None:
        plan = _plan_dense(a, b, d, c is not None, config)
        if key is not None:
            if len(_dense_plans) >= _MAX_PLANS:
                _dense_plans.clear()
            _dense_plans[key] = plan
    pairs = a, b
    (a, sfa), (b, sfb) = pairs
    _check_pointers(plan, {"a": a, "b": b, "d": d, "sfa": sfa, "sfb": sfb})
    if plan.fn is None:
        if plan.zero_fill:
            _fill_without_product(d, c)
        return d
    aligned = is_tma_aligned_sfa(sfa) and (not plan.sfb_per_row or is_tma_aligned_sfa(sfb))
    if not aligned:
        sfa = get_mn_major_tma_aligned_tensor(sfa)  # one copy each
        if plan.sfb_per_row:
            sfb = get_mn_major_tma_aligned_tensor(sfb)
    elif key is not None and c is None:
        _register_launcher(_launch_key(*pairs, d, config), plan)
    if c is not None and not _same_view(c, d):
        d.copy_(c)
    plan.fn(a, b, d, sfa, sfb, plan.num_sms)
    return d


def _same_view(x: torch.Tensor, y: torch.Tensor) -> bool:
    return x.data_ptr() == y.data_ptr() and x.shape == y.shape and x.stride() == y.stride()


def _check_accumulator(c: torch.Tensor, d: torch.Tensor):
    """``c`` is a float32 tensor shaped like ``d`` on its device, and is ``d`` itself or a tensor
    apart from it (it is copied into ``d`` first)."""
    _check_tensor("c", c, torch.float32, d.dim())
    _check_shape("c", c, d.shape)
    if c.device != d.device:
        raise ValueError(f"c is on {c.device} but d is on {d.device}")
    if _same_view(c, d):
        return
    if c.numel() and d.numel():
        c_lo, c_hi = _byte_span(c)
        d_lo, d_hi = _byte_span(d)
        if c_lo < d_hi and d_lo < c_hi:
            raise ValueError("c must be d itself or not overlap d in memory")


def _fill_without_product(d: torch.Tensor, c: torch.Tensor | None):
    """The result of an empty reduction (k = 0): ``c``, or zeros."""
    if c is None:
        d.zero_()
    elif not _same_view(c, d):
        d.copy_(c)


class _Plan(NamedTuple):
    """What a call with a given layout (shapes, strides, dtypes, devices) needs: checked once."""

    fn: object  # the compiled kernel, or None when there is nothing to compute
    num_sms: int
    zero_fill: bool  # k == 0: d is all zeros (or c)
    spans: dict  # name -> bytes from data_ptr a tensor can touch (for the overlap check)
    sfb_per_row: bool = False  # sfb is [n, ceil(k/128)] (1x128), loaded by TMA like sfa


_dense_plans: dict = {}  # _layout_key -> _Plan, every layout seen (checked path)
# The fast path: _launch_key -> (layout, fn, num_sms, spans of a, sfa, b, sfb, d), and the
# launcher last registered for each pair of shapes of a and b (looked up first).
_launchers: dict = {}
_recent_launchers: dict = {}
_MAX_PLANS = 4096


def _layout_key(args, config, accumulate=False):
    """Everything a plan depends on except the data pointers; None if the arguments are malformed."""
    try:
        (a, sfa), (b, sfb), d = args
        return (
            type(args[0]),
            type(args[1]),
            tuple((type(t), t.shape, t.stride(), t.dtype, t.device) for t in (a, sfa, b, sfb, d)),
            config,
            accumulate,
            device.num_sms_override(),
        )
    except (TypeError, ValueError, AttributeError):
        return None


def _launch_key(a, b, d, config):
    """``(shapes, layout)``: the fast path's key (see :func:`fp8_gemm_nt`), for registration."""
    (x, sx), (y, sy) = a, b
    layout = (
        a.__class__, b.__class__,
        x.__class__, x.is_contiguous() or x.stride(), x.dtype, x.device,
        sx.__class__, sx.shape, sx.stride(), sx.dtype, sx.device,
        y.__class__, y.is_contiguous() or y.stride(), y.dtype, y.device,
        sy.__class__, sy.shape, sy.is_contiguous() or sy.stride(), sy.dtype, sy.device,
        d.__class__, d.shape, d.is_contiguous() or d.stride(), d.dtype, d.device,
        config, device._num_sms_override,
    )
    return (x.shape, y.shape), layout


def _register_launcher(key, plan: _Plan):
    """Prepare the fast path for a launchable plan (every tensor non-empty, sfa TMA-aligned)."""
    shapes, layout = key
    spans = plan.spans
    launcher = (layout, plan.fn, plan.num_sms, spans["a"], spans["sfa"], spans["b"], spans["sfb"],
                spans["d"])
    if len(_launchers) >= _MAX_PLANS:
        _launchers.clear()
        _recent_launchers.clear()
    _launchers[key] = launcher
    _recent_launchers[shapes] = launcher


def _check_pointers(plan: _Plan, tensors: dict):
    """Per-call checks that depend on the data pointers: TMA alignment and output overlap."""
    for name in ("a", "b", "d"):
        if tensors[name].data_ptr() % 16 and tensors[name].numel():
            raise ValueError(f"{name} must start at a 16-byte aligned address")
    d_lo = tensors["d"].data_ptr()
    d_hi = d_lo + plan.spans["d"]
    if plan.spans["d"] == 0:
        return
    for name, t in tensors.items():
        if name != "d" and plan.spans[name]:
            lo = t.data_ptr()
            if d_lo < lo + plan.spans[name] and lo < d_hi:
                raise ValueError(f"d must not overlap {name} in memory")


_OUT_DTYPES = {torch.bfloat16: "bf16", torch.float32: "fp32"}


def _check_output(name, d, rank):
    """``d`` is a bfloat16 or float32 tensor of ``rank``; returns its GemmConfig out_dtype."""
    if not isinstance(d, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(d).__name__}")
    if d.dtype not in _OUT_DTYPES:
        raise TypeError(f"{name} must have dtype torch.bfloat16 or torch.float32, got {d.dtype}")
    _check_tensor(name, d, d.dtype, rank)
    return _OUT_DTYPES[d.dtype]


def _check_variant(config, variant: heuristics.Variant):
    """A forced config must build the kernel the call needs."""
    if config.variant != variant:
        raise ValueError(f"config must have {heuristics.Variant._fields} = {tuple(variant)} "
                         f"for these arguments, got {tuple(config.variant)}")


def _plan_dense(a, b, d, accumulate, config) -> _Plan:
    """Every check of :func:`fp8_gemm_nt` that depends on the layout only, and the kernel to run."""
    (a, sfa), (b, sfb) = _unpack_pairs(a, b)
    m, n, k = _check_nt_operands(a, b, torch.float8_e4m3fn)
    out_dtype = _check_output("d", d, 2)
    _check_tensor("sfa", sfa, torch.float32, 2)
    _check_tensor("sfb", sfb, torch.float32, 2)
    _check_shape("d", d, (m, n))
    _check_nk(n, k)
    kb = ceil_div(k, SCALE_BLOCK)
    _check_shape("sfa", sfa, (m, kb))
    sfb_per_row = tuple(sfb.shape) == (n, kb) and n != ceil_div(n, SCALE_BLOCK)
    if not sfb_per_row:
        if tuple(sfb.shape) != (ceil_div(n, SCALE_BLOCK), kb):
            raise ValueError(f"sfb must have shape [ceil(n/128), ceil(k/128)] = {[ceil_div(n, SCALE_BLOCK), kb]} "
                             f"(128x128 blocks) or [n, ceil(k/128)] = {[n, kb]} (1x128), got {list(sfb.shape)}")
        if sfb.shape[1] > 1 and sfb.stride(1) != 1:
            raise ValueError(f"sfb must have unit stride along its last dim, got strides {sfb.stride()}")
    _check_rows("a", a, 16)
    _check_rows("b", b, 16)
    _check_rows("d", d, 16 // d.element_size())
    if accumulate and out_dtype != "fp32":
        raise TypeError(f"d must have dtype torch.float32 when c is given, got {d.dtype}")
    _check_placement({"a": a, "b": b, "d": d, "sfa": sfa, "sfb": sfb})
    spans = {name: _byte_extent(t) for name, t in {"a": a, "b": b, "d": d, "sfa": sfa, "sfb": sfb}.items()}
    num_sms = device.get_num_sms(d.device.index)
    if m == 0 or n == 0 or k == 0:
        return _Plan(None, num_sms, m > 0 and n > 0 and k == 0, spans, sfb_per_row)
    variant = heuristics.Variant(1 if sfb_per_row else 128, out_dtype, accumulate)
    if config is None:
        config = heuristics.choose_config(m, n, k, num_sms, variant)
    _check_variant(config, variant)
    if config.static_nk not in (None, (n, k)):
        raise ValueError(f"config has N and K compiled in as {config.static_nk}, this call has (n, k) = {(n, k)}")
    if config.a_box_rows is not None and m > config.a_box_rows:
        raise ValueError(f"config loads A in boxes of a_box_rows={config.a_box_rows} rows, this call has m = {m}")
    return _Plan(jit.get_fp8_gemm(config), num_sms, False, spans, sfb_per_row)


def _check_grouped_b(b, sfb, k):
    """``b [G, n, k]`` fp8 and ``sfb [G, ceil(n/128), ceil(k/128)]``; returns ``(G, n)``."""
    _check_tensor("b", b, torch.float8_e4m3fn, 3)
    _check_tensor("sfb", sfb, torch.float32, 3)
    num_groups, n = b.shape[0], b.shape[1]
    if b.shape[2] != k:
        raise ValueError(f"b must be [G, n, k] with k={k} as in a, got {list(b.shape)}")
    _check_nk(n, k)
    _check_shape("sfb", sfb, (num_groups, ceil_div(n, SCALE_BLOCK), ceil_div(k, SCALE_BLOCK)))
    _check_rows("b", b, 16)
    if sfb.shape[2] > 1 and sfb.stride(2) != 1:
        raise ValueError(f"sfb must have unit stride along its last dim, got strides {sfb.stride()}")
    return num_groups, n


def m_grouped_fp8_gemm_nt_contiguous(
    a: tuple[torch.Tensor, torch.Tensor],
    b: tuple[torch.Tensor, torch.Tensor],
    d: torch.Tensor,
    m_indices: torch.Tensor,
    config: jit.GemmConfig | None = None,
    use_psum_layout: bool = False,
) -> torch.Tensor:
    """MoE GEMM over experts stacked along M: ``d[r] = (a[r] * sfa[r]) @ (b[e] * sfb[e])^T``, ``e = m_indices[r]``.

    :param a: ``(a, sfa)``: ``a [M_sum, k]`` fp8, the tokens of all experts stacked, and
        ``sfa [M_sum, ceil(k/128)]`` fp32 (best M-major and TMA-aligned, else converted).
    :param b: ``(b, sfb)``: ``b [G, n, k]`` fp8 and ``sfb [G, ceil(n/128), ceil(k/128)]`` fp32.
    :param d: output ``[M_sum, n]`` bf16.
    :param m_indices: int32 ``[M_sum]`` on the device: the expert of each row, constant within each
        block of :func:`get_m_alignment_for_contiguous_layout` (128) rows; ``-1`` marks padding
        rows, which are skipped (no math, nothing written there). Build it with
        :func:`cute_gemm.moe.make_contiguous_m_indices`. The kernel reads the first row of each
        128-row block; the per-block constancy is the caller's contract (not checked: it would
        need a device synchronisation; :func:`cute_gemm.moe.check_contiguous_m_indices` checks it).
    :param use_psum_layout: ``m_indices`` is instead int32 ``[G]`` on the device, the end row
        (exclusive) of each expert; expert ``g`` starts at ``m_indices[g - 1]`` rounded up to 128
        rows (0 for the first), as :func:`cute_gemm.moe.make_contiguous_psum` builds. Rows outside
        every expert are neither computed nor written. The same kernel and one launch.

    Same ``n``/``k`` rules as :func:`fp8_gemm_nt`. Returns ``d``.
    """
    (a, sfa), (b, sfb) = _unpack_pairs(a, b)
    if not isinstance(use_psum_layout, bool):
        raise TypeError(f"use_psum_layout must be a bool, got {type(use_psum_layout).__name__}")
    _check_tensor("a", a, torch.float8_e4m3fn, 2)
    _check_tensor("sfa", sfa, torch.float32, 2)
    _check_tensor("d", d, torch.bfloat16, 2)
    _check_tensor("m_indices", m_indices, torch.int32, 1)
    m_sum, k = a.shape
    num_groups, n = _check_grouped_b(b, sfb, k)
    _check_shape("d", d, (m_sum, n))
    _check_shape("sfa", sfa, (m_sum, ceil_div(k, SCALE_BLOCK)))
    _check_shape("m_indices", m_indices, (num_groups,) if use_psum_layout else (m_sum,))
    _check_rows("a", a, 16)
    _check_rows("d", d, 8)
    if m_indices.numel() > 1 and m_indices.stride(0) != 1:
        raise ValueError("m_indices must be contiguous")
    tensors = {"a": a, "b": b, "d": d, "sfa": sfa, "sfb": sfb, "m_indices": m_indices}
    _check_placement(tensors)
    if m_sum == 0 or n == 0 or num_groups == 0:
        return d
    if k == 0:
        return d.zero_()
    sfa = get_mn_major_tma_aligned_tensor(sfa)
    num_sms = device.get_num_sms(d.device.index)
    kind = GemmKind.M_GROUPED_CONTIGUOUS_PSUM if use_psum_layout else GemmKind.M_GROUPED_CONTIGUOUS
    if config is None:
        config = heuristics.choose_grouped_config(kind, m_sum, 1, n, k, num_sms)
    _check_kind(config, kind)
    jit.get_fp8_gemm(config)(a, _experts_last(b), d, sfa, _experts_last(sfb), m_indices, num_sms)
    return d


def m_grouped_fp8_gemm_nt_masked(
    a: tuple[torch.Tensor, torch.Tensor],
    b: tuple[torch.Tensor, torch.Tensor],
    d: torch.Tensor,
    masked_m: torch.Tensor,
    expected_m: int,
    config: jit.GemmConfig | None = None,
) -> torch.Tensor:
    """MoE GEMM per expert with device-side row counts: ``d[g, :masked_m[g]] = a[g] @ b[g]^T`` (scaled).

    :param a: ``(a, sfa)``: ``a [G, M_max, k]`` fp8 and ``sfa [G, M_max, ceil(k/128)]`` fp32
        (best M-major per expert and TMA-aligned, see :func:`get_mn_major_tma_aligned_tensor`).
    :param b: ``(b, sfb)``: ``b [G, n, k]`` fp8 and ``sfb [G, ceil(n/128), ceil(k/128)]`` fp32.
    :param d: output ``[G, M_max, n]`` bf16. Rows at or past ``masked_m[g]`` are neither computed
        nor written.
    :param masked_m: int32 ``[G]`` **on the device**: valid rows per expert (0 .. M_max). Never read
        by the host, so the call can be captured in a CUDA graph and replayed with new values.
    :param expected_m: host hint, the typical rows per expert (> 0), used to choose the tile.
        ``expected_m >= M_max`` says every expert is full, which lets the heuristic take 256-row
        tiles (faster then, slower with uneven counts: :func:`heuristics.masked_full_tiles`).

    Same ``n``/``k`` rules as :func:`fp8_gemm_nt`. Returns ``d``.
    """
    (a, sfa), (b, sfb) = _unpack_pairs(a, b)
    _check_tensor("a", a, torch.float8_e4m3fn, 3)
    _check_tensor("sfa", sfa, torch.float32, 3)
    _check_tensor("d", d, torch.bfloat16, 3)
    _check_tensor("masked_m", masked_m, torch.int32, 1)
    if isinstance(expected_m, bool) or not isinstance(expected_m, int) or expected_m <= 0:
        raise ValueError(f"expected_m must be a positive int, got {expected_m!r}")
    num_groups, m_max, k = a.shape
    g_b, n = _check_grouped_b(b, sfb, k)
    if g_b != num_groups:
        raise ValueError(f"b must have G={num_groups} experts as a, got {g_b}")
    _check_shape("d", d, (num_groups, m_max, n))
    _check_shape("sfa", sfa, (num_groups, m_max, ceil_div(k, SCALE_BLOCK)))
    _check_shape("masked_m", masked_m, (num_groups,))
    _check_rows("a", a, 16)
    _check_rows("d", d, 8)
    tensors = {"a": a, "b": b, "d": d, "sfa": sfa, "sfb": sfb, "masked_m": masked_m}
    _check_placement(tensors)
    if num_groups == 0 or m_max == 0 or n == 0:
        return d
    if k == 0:
        raise ValueError("k must be positive for the masked GEMM (rows past masked_m stay untouched)")
    sfa = get_mn_major_tma_aligned_tensor(sfa)
    num_sms = device.get_num_sms(d.device.index)
    if config is None:
        config = heuristics.choose_grouped_config(
            GemmKind.M_GROUPED_MASKED, min(expected_m, m_max), num_groups, n, k, num_sms,
            experts_full=expected_m >= m_max,
        )
    _check_kind(config, GemmKind.M_GROUPED_MASKED)
    jit.get_fp8_gemm(config)(
        _experts_last(a), _experts_last(b), _experts_last(d), _experts_last(sfa),
        _experts_last(sfb), masked_m, num_sms,
    )
    return d


def _check_kind(config, kind):
    if config.kind != kind:
        raise ValueError(f"config must have kind={kind.name}, got {config.kind.name}")


def k_grouped_fp8_gemm_nt_contiguous(
    a: tuple[torch.Tensor, torch.Tensor],
    b: tuple[torch.Tensor, torch.Tensor],
    d: torch.Tensor,
    ks,
    c: torch.Tensor | None = None,
    config: jit.GemmConfig | None = None,
) -> torch.Tensor:
    """MoE weight gradients, experts stacked along K: ``d[g] = [c[g] +] a_g @ b_g^T`` (scaled), one launch.

    Expert ``g`` owns columns ``[sum(ks[:g]), sum(ks[:g+1]))`` of ``a`` and ``b`` (its tokens).

    :param a: ``(a, sfa)``: ``a [m, K_sum]`` float8_e4m3fn (K-major) and ``sfa [m, K_sum/128]``
        float32, one scale per row per 128 K (1x128; best M-major and TMA-aligned, else converted).
    :param b: ``(b, sfb)``: ``b [n, K_sum]`` float8_e4m3fn and ``sfb [n, K_sum/128]`` float32 (1x128,
        the same layout as ``sfa``).
    :param d: output ``[G, m, n]`` float32 (N-major).
    :param ks: the tokens of each expert, ``G`` values, each a multiple of 128 (0 allowed), summing
        to ``K_sum``: a list of ints (checked here; copied to the device, which a CUDA graph cannot
        capture) or an int32 ``[G]`` tensor on ``d``'s device (not read by the host: the caller
        guarantees the rule; capturable).
    :param c: optional float32 ``[G, m, n]`` to accumulate into: ``c`` may be ``d`` itself (one
        kernel, TMA reduce-add; experts with no tokens then leave ``d[g]`` as is); any other ``c``
        is copied into ``d`` first. Without ``c``, an expert with no tokens gets zeros.
    :param config: a ``GemmConfig`` of kind ``K_GROUPED`` to force.

    Shape rule: ``m`` any, ``n`` a multiple of 8, ``K_sum`` a multiple of 128. Returns ``d``.
    """
    (a, sfa), (b, sfb) = _unpack_pairs(a, b)
    m, n, k_sum = _check_nt_operands(a, b, torch.float8_e4m3fn, "K_sum")
    _check_tensor("sfa", sfa, torch.float32, 2)
    _check_tensor("sfb", sfb, torch.float32, 2)
    _check_tensor("d", d, torch.float32, 3)
    if k_sum % SCALE_BLOCK:
        raise ValueError(f"K_sum (a.shape[1]) must be a multiple of 128, got {k_sum}")
    _check_nk(n, k_sum)
    num_groups = d.shape[0]
    _check_shape("d", d, (num_groups, m, n))
    _check_shape("sfa", sfa, (m, k_sum // SCALE_BLOCK))
    _check_shape("sfb", sfb, (n, k_sum // SCALE_BLOCK))
    _check_rows("a", a, 16)
    _check_rows("b", b, 16)
    _check_rows("d", d, 4)
    ks_tensor = _check_ks(ks, num_groups, k_sum, d.device)
    if c is not None:
        _check_accumulator(c, d)
    tensors = {"a": a, "b": b, "d": d, "sfa": sfa, "sfb": sfb}
    if isinstance(ks, torch.Tensor):
        tensors["ks"] = ks
    _check_placement(tensors)
    if num_groups == 0 or m == 0 or n == 0:
        return d
    if k_sum == 0:
        _fill_without_product(d, c)
        return d
    num_sms = device.get_num_sms(d.device.index)
    accumulate = c is not None
    if config is None:
        config = heuristics.choose_k_grouped_config(
            m, n, max(k_sum // num_groups, SCALE_BLOCK), num_groups, num_sms, accumulate
        )
    _check_kind(config, GemmKind.K_GROUPED)
    _check_variant(config, heuristics.Variant(1, "fp32", accumulate))
    sfa, sfb = get_mn_major_tma_aligned_tensor(sfa), get_mn_major_tma_aligned_tensor(sfb)
    if c is not None and not _same_view(c, d):
        d.copy_(c)
    jit.get_fp8_gemm(config)(a, b, _experts_last(d), sfa, sfb, ks_tensor(), num_sms)
    return d


def _check_ks(ks, num_groups: int, k_sum: int, dev: torch.device):
    """Check ``ks`` and return a function giving it as an int32 device tensor (made only at launch)."""
    if isinstance(ks, torch.Tensor):
        _check_tensor("ks", ks, torch.int32, 1)
        _check_shape("ks", ks, (num_groups,))
        if ks.numel() > 1 and ks.stride(0) != 1:
            raise ValueError("ks must be contiguous")
        return lambda: ks
    if not isinstance(ks, (list, tuple)) or not all(isinstance(x, int) and not isinstance(x, bool) for x in ks):
        raise TypeError("ks must be a list of ints or an int32 tensor")
    if len(ks) != num_groups:
        raise ValueError(f"ks must have G={num_groups} entries (d.shape[0]), got {len(ks)}")
    for g, x in enumerate(ks):
        if x < 0 or x % SCALE_BLOCK:
            raise ValueError(f"ks[{g}] must be a non-negative multiple of 128, got {x}")
    if sum(ks) != k_sum:
        raise ValueError(f"ks must sum to K_sum={k_sum} (a.shape[1]), got {sum(ks)}")
    return lambda: torch.tensor(ks, dtype=torch.int32, device=dev)
