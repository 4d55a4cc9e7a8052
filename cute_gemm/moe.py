"""Layout helpers for the MoE grouped GEMMs (plain torch; any device).

The m-grouped *contiguous* GEMM (:func:`cute_gemm.m_grouped_fp8_gemm_nt_contiguous`) takes the
tokens of all experts stacked along M in one ``[M_sum, K]`` tensor. Each expert's rows start on a
multiple of :func:`get_m_alignment_for_contiguous_layout` (128) rows and are followed by padding
rows up to the next multiple; ``m_indices [M_sum]`` (int32) names each row's expert, ``-1`` for
padding. Example, two experts with 3 and 130 tokens (alignment 128)::

    rows     0..2   3..127   128..257   258..383
    expert   0      -1       1          -1              M_sum = 384, row_offsets = [0, 128, 384]

The kernel reads the expert of each 128-row block (each BLOCK_M block) from its first row, skips
blocks whose first row is ``-1`` and never writes padding rows. These helpers build that layout:

- :func:`make_contiguous_m_indices`: ``m_indices`` and the row offsets from the group sizes.
- :func:`pack_contiguous` / :func:`unpack_contiguous`: per-expert ``[m_g, K]`` tensors to and from
  the zero-padded ``[M_sum, K]`` stack (also for scales ``[m_g, ceil(K/128)]`` or outputs
  ``[M_sum, N]``).
- :func:`check_contiguous_m_indices`: checks a given ``m_indices`` against the layout rule (reads
  it on the host, so it synchronises with the device).
- :func:`make_contiguous_psum`: the same layout as prefix sums, ``psum [G]`` int32, the end row of
  each expert (``use_psum_layout=True``; the example above: ``[3, 258]``). Expert ``g`` starts at
  ``psum[g - 1]`` rounded up to 128 (0 for the first).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import torch

from schedulers.raster import CONTIGUOUS_M_ALIGNMENT

__all__ = [
    "get_m_alignment_for_contiguous_layout",
    "make_contiguous_m_indices",
    "pack_contiguous",
    "unpack_contiguous",
    "check_contiguous_m_indices",
    "make_contiguous_psum",
]


def get_m_alignment_for_contiguous_layout() -> int:
    """Rows every expert is padded to in the contiguous layout: 128.

    128 is a multiple of every BLOCK_M the kernel uses (64 and 128), so each M block of a tile
    belongs to exactly one expert (or is all padding).
    """
    return CONTIGUOUS_M_ALIGNMENT


def _as_int_list(name: str, values) -> list[int]:
    """``values`` (a sequence of ints or a 1-D integer tensor) as a list of non-negative ints."""
    if isinstance(values, torch.Tensor):
        integer = not (values.dtype.is_floating_point or values.dtype.is_complex)
        if values.dim() != 1 or not integer or values.dtype == torch.bool:
            raise ValueError(
                f"{name} must be a sequence of non-negative ints or a 1-D integer tensor, "
                f"got a {values.dtype} tensor of shape {tuple(values.shape)}"
            )
        values = values.tolist()
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ValueError(
            f"{name} must be a sequence of non-negative ints, got {type(values).__name__}"
        )
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bool):
            raise ValueError(f"{name}[{i}] must be a non-negative int, got {v!r}")
        try:
            v = operator.index(v)
        except TypeError:
            raise ValueError(f"{name}[{i}] must be a non-negative int, got {v!r}") from None
        if v < 0:
            raise ValueError(f"{name}[{i}] must be a non-negative int, got {v}")
        out.append(v)
    return out


def _check_alignment(alignment) -> int:
    if alignment is None:
        return get_m_alignment_for_contiguous_layout()
    if isinstance(alignment, bool) or not isinstance(alignment, int) or alignment <= 0:
        raise ValueError(f"alignment must be a positive int, got {alignment!r}")
    return alignment


def _row_offsets(sizes: list[int], alignment: int) -> list[int]:
    offsets = [0]
    for size in sizes:
        offsets.append(offsets[-1] + -(-size // alignment) * alignment)
    return offsets


def make_contiguous_m_indices(
    group_sizes: Sequence[int],
    alignment: int | None = None,
    device=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``m_indices`` and row offsets of the contiguous layout for experts of ``group_sizes`` rows.

    :param group_sizes: ``[G]`` tokens per expert: non-negative ints (a list, tuple or 1-D integer
        tensor; a device tensor is read on the host).
    :param alignment: rows each expert is padded to; default
        :func:`get_m_alignment_for_contiguous_layout` (128). The kernel needs a multiple of its
        BLOCK_M; other values are accepted for experiments.
    :param device: where both results live (default: CPU).
    :returns: ``(m_indices, row_offsets)``:

        - ``m_indices`` int32 ``[M_sum]``: expert ``g``'s rows ``row_offsets[g] ..
          row_offsets[g] + group_sizes[g] - 1`` hold ``g``, its padding up to ``row_offsets[g+1]``
          holds ``-1``;
        - ``row_offsets`` int64 ``[G + 1]``: ``row_offsets[0] = 0``, ``row_offsets[g + 1] =
          row_offsets[g] + ceil(group_sizes[g] / alignment) * alignment``, so every offset is a
          multiple of ``alignment`` and ``M_sum = row_offsets[G]``. An expert of size 0 takes no
          rows (``row_offsets[g] == row_offsets[g + 1]``).

    :raises ValueError: if ``group_sizes`` is not a sequence of non-negative ints or ``alignment``
        is not a positive int.
    """
    sizes = _as_int_list("group_sizes", group_sizes)
    offsets = _row_offsets(sizes, _check_alignment(alignment))
    num_groups, m_sum = len(sizes), offsets[-1]
    row_offsets = torch.tensor(offsets, dtype=torch.int64, device=device)
    # Runs of (g repeated size_g times, -1 repeated pad_g times) for g = 0 .. G-1, in one op.
    values = torch.arange(num_groups, dtype=torch.int32).repeat_interleave(2)
    values[1::2] = -1
    counts = torch.tensor(
        [c for g, s in enumerate(sizes) for c in (s, offsets[g + 1] - offsets[g] - s)],
        dtype=torch.int64,
    )
    m_indices = torch.repeat_interleave(values, counts, output_size=m_sum).to(device)
    return m_indices, row_offsets


def make_contiguous_psum(group_sizes: Sequence[int], device=None) -> torch.Tensor:
    """``psum`` of the contiguous layout (alignment 128) for experts of ``group_sizes`` rows.

    :param group_sizes: ``[G]`` tokens per expert (as in :func:`make_contiguous_m_indices`).
    :param device: where the result lives (default: CPU).
    :returns: int32 ``[G]``: ``psum[g] = row_offsets[g] + group_sizes[g]``, the end row (exclusive)
        of expert ``g`` in the stack :func:`pack_contiguous` builds; expert ``g`` starts at
        ``psum[g - 1]`` rounded up to 128 rows, which is ``row_offsets[g]``.
    """
    sizes = _as_int_list("group_sizes", group_sizes)
    offsets = _row_offsets(sizes, CONTIGUOUS_M_ALIGNMENT)
    return torch.tensor([start + size for start, size in zip(offsets, sizes)], dtype=torch.int32, device=device)


def pack_contiguous(
    xs: Sequence[torch.Tensor],
    alignment: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stack per-expert ``[m_g, K]`` tensors into the zero-padded contiguous layout.

    :param xs: ``G >= 1`` tensors ``[m_g, K]`` with the same ``K``, dtype and device (``m_g`` may be
        0). Any dtype, e.g. bf16 activations, fp8 ``a`` or its fp32 scales ``[m_g, ceil(K/128)]``.
    :param alignment: as in :func:`make_contiguous_m_indices` (default 128).
    :returns: ``(packed, m_indices, row_offsets)``: ``packed [M_sum, K]`` (new, contiguous, on the
        inputs' device) with ``packed[row_offsets[g] : row_offsets[g] + m_g] = xs[g]`` and zeros in
        every padding row; ``m_indices`` int32 ``[M_sum]`` and ``row_offsets`` int64 ``[G + 1]``
        from :func:`make_contiguous_m_indices`, on the same device.
    :raises ValueError: if ``xs`` is empty, a tensor is not 2-D, or K, dtype or device differ.
    """
    if isinstance(xs, torch.Tensor) or not isinstance(xs, Sequence):
        raise ValueError(f"xs must be a sequence of 2-D tensors, got {type(xs).__name__}")
    if len(xs) == 0:
        raise ValueError("xs must hold at least one tensor (K, dtype and device come from it)")
    for i, x in enumerate(xs):
        if not isinstance(x, torch.Tensor) or x.dim() != 2:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"xs[{i}] must be a 2-D tensor [m_g, K], got {shape}")
    first = xs[0]
    k, dtype, device = first.shape[1], first.dtype, first.device
    for i, x in enumerate(xs):
        if x.shape[1] != k:
            raise ValueError(f"xs[{i}] has K={x.shape[1]}, but xs[0] has K={k}")
        if x.dtype != dtype:
            raise ValueError(f"xs[{i}] has dtype {x.dtype}, but xs[0] has {dtype}")
        if x.device != device:
            raise ValueError(f"xs[{i}] is on {x.device}, but xs[0] is on {device}")
    sizes = [x.shape[0] for x in xs]
    m_indices, row_offsets = make_contiguous_m_indices(sizes, alignment, device=device)
    offsets = _row_offsets(sizes, _check_alignment(alignment))  # on the host, no device sync
    packed = torch.zeros((offsets[-1], k), dtype=dtype, device=device)
    for x, start in zip(xs, offsets):
        if x.shape[0]:
            packed[start:start + x.shape[0]] = x
    return packed, m_indices, row_offsets


def unpack_contiguous(
    packed: torch.Tensor,
    row_offsets,
    group_sizes: Sequence[int],
) -> list[torch.Tensor]:
    """Each expert's valid rows of a contiguous-layout tensor, as views (no copy).

    :param packed: ``[M_sum, ...]``, e.g. the ``[M_sum, K]`` input or the ``[M_sum, N]`` output.
    :param row_offsets: ``[G + 1]`` row offsets (tensor or sequence) from
        :func:`make_contiguous_m_indices` / :func:`pack_contiguous`.
    :param group_sizes: ``[G]`` valid rows per expert.
    :returns: ``G`` views ``packed[row_offsets[g] : row_offsets[g] + group_sizes[g]]``, each
        ``[group_sizes[g], ...]``.
    :raises ValueError: if the lengths disagree, offsets decrease, an expert's rows overflow its
        slot, or the offsets run past ``packed``.
    """
    if not isinstance(packed, torch.Tensor) or packed.dim() < 1:
        raise ValueError("packed must be a tensor [M_sum, ...]")
    offsets = _as_int_list("row_offsets", row_offsets)
    sizes = _as_int_list("group_sizes", group_sizes)
    if len(offsets) != len(sizes) + 1:
        raise ValueError(
            f"row_offsets must have G + 1 = {len(sizes) + 1} entries for {len(sizes)} groups, "
            f"got {len(offsets)}"
        )
    if offsets[-1] > packed.shape[0]:
        raise ValueError(
            f"row_offsets end at row {offsets[-1]}, past packed's {packed.shape[0]} rows"
        )
    for g, size in enumerate(sizes):
        slot = offsets[g + 1] - offsets[g]
        if slot < 0:
            raise ValueError(
                f"row_offsets must not decrease (row_offsets[{g}] > row_offsets[{g + 1}])"
            )
        if size > slot:
            raise ValueError(f"group_sizes[{g}]={size} rows do not fit in its slot of {slot} rows")
    return [packed[start:start + size] for start, size in zip(offsets, sizes)]


def check_contiguous_m_indices(
    m_indices: torch.Tensor,
    num_groups: int | None = None,
    alignment: int | None = None,
) -> None:
    """Raise ``ValueError`` unless ``m_indices`` follows the contiguous layout rule.

    The rule: ``m_indices`` is a 1-D int32 tensor ``[M_sum]`` whose values are in ``[-1, G)``
    (``G = num_groups`` when given, else only ``>= -1`` is checked), and every block of
    ``alignment`` rows (``m_indices[i * alignment : (i + 1) * alignment]``, the last one possibly
    shorter) is one expert's rows followed by padding: ``e, .., e, -1, .., -1`` with ``e >= 0``, or
    all ``-1``. This is what :func:`make_contiguous_m_indices` builds, and it makes every BLOCK_M
    block that divides ``alignment`` read its expert correctly from its first row (the kernel
    does not check this: that would need a device synchronisation; this function copies
    ``m_indices`` to the host).
    """
    if not isinstance(m_indices, torch.Tensor):
        raise ValueError(f"m_indices must be a torch.Tensor, got {type(m_indices).__name__}")
    if m_indices.dtype != torch.int32 or m_indices.dim() != 1:
        raise ValueError(
            f"m_indices must be a 1-D int32 tensor, got {m_indices.dtype} {tuple(m_indices.shape)}"
        )
    alignment = _check_alignment(alignment)
    if num_groups is not None and (
        isinstance(num_groups, bool) or not isinstance(num_groups, int) or num_groups < 0
    ):
        raise ValueError(f"num_groups must be a non-negative int, got {num_groups!r}")
    idx = m_indices.detach().to("cpu", torch.int64)
    if idx.numel() == 0:
        return
    low, high = int(idx.min()), int(idx.max())
    if low < -1:
        row = int((idx < -1).nonzero()[0])
        raise ValueError(f"m_indices[{row}] = {int(idx[row])} (must be >= -1; -1 marks padding)")
    if num_groups is not None and high >= num_groups:
        row = int((idx >= num_groups).nonzero()[0])
        raise ValueError(f"m_indices[{row}] = {int(idx[row])} is not an expert of G={num_groups}")
    m_sum = idx.numel()
    pad = -m_sum % alignment
    blocks = torch.cat([idx, idx.new_full((pad,), -1)]).view(-1, alignment)
    first = blocks[:, :1]
    # Valid iff each row is the block's first value or -1, and once -1, -1 to the block's end.
    is_pad = blocks < 0
    pad_before = torch.cummax(is_pad.to(torch.int8), dim=1).values.bool()
    bad = ((blocks != first) & ~is_pad) | (pad_before & ~is_pad)
    if bool(bad.any()):
        block, col = (int(v) for v in bad.nonzero()[0])
        row, start = block * alignment + col, block * alignment
        end = min(m_sum, start + alignment) - 1
        raise ValueError(
            f"m_indices[{row}] = {int(idx[row])} breaks the contiguous layout: each block of "
            f"{alignment} rows (here rows {start}..{end}, first row {int(blocks[block, 0])}) must "
            f"be one expert's rows then -1 padding"
        )
