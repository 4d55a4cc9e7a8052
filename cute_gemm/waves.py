"""Tiles and waves of a dense GEMM on the SMs, as data and as a text picture (plain Python).

The persistent kernel launches one CTA per SM (at most one per tile); CTA ``c`` computes the tiles
``c, c + C, c + 2C, ...`` of the rasterised tile order (:mod:`schedulers.raster`). Its *i*-th
tile runs in **wave** (round) *i*: the tiles of one wave run side by side, one per SM, and a problem
whose tile count is not a multiple of the SM count ends with a partial wave in which some SMs idle.
That last-wave occupancy is one of the two terms of the heuristic's cost (:mod:`cute_gemm.heuristics`).

- :func:`plan_waves`: the wave and CTA of every tile, from the plain-Python twin of the kernel's
  scheduler (:func:`schedulers.reference.normal_schedule`, clusters included;
  :func:`schedulers.reference.split_k_schedule` for a tile split along K over several CTAs, which
  then occupies that many SMs in its wave).
- :func:`render_waves`: the tile grid in text, one character per tile (its wave: ``0-9``, then
  ``a-z``, ``A-Z``), compressed when the grid is large, with a line on last-wave occupancy. This is
  the picture ``python -m cute_gemm explain`` prints.
"""

from __future__ import annotations

from dataclasses import dataclass

from schedulers.reference import ceil_div, normal_schedule, split_k_schedule

WAVE_SYMBOLS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
"""The character of wave ``w`` is ``WAVE_SYMBOLS[w]``; waves past the last symbol print as ``+``."""

EMPTY = "."
"""Character of a cell without tiles (only in a compressed picture's ragged edge)."""


def wave_symbol(wave: int) -> str:
    """One character for wave ``wave`` (``+`` past the 62nd)."""
    return WAVE_SYMBOLS[wave] if 0 <= wave < len(WAVE_SYMBOLS) else "+"


@dataclass(frozen=True)
class WavePlan:
    """Where and when every output tile of an ``m x n`` problem runs."""

    m: int
    n: int
    block_m: int
    block_n: int
    num_sms: int
    cluster: tuple[int, int]
    num_m_blocks: int
    num_n_blocks: int
    wave: tuple[tuple[int, ...], ...]
    """``wave[m_block][n_block]``: the round (the CTA's iteration) the tile runs in."""
    cta: tuple[tuple[int, ...], ...]
    """``cta[m_block][n_block]``: the CTA (one per SM) that computes the tile (split-K: the first
    CTA of its cluster)."""
    num_ctas: int
    """CTAs launched: one per SM, fewer when there are fewer tiles (whole clusters)."""
    tiles_per_wave: tuple[int, ...]
    """CTAs busy in each wave (the SMs busy in it): the tiles, times ``split_k``."""
    split_k: int = 1
    """CTAs each tile is split over along K."""

    @property
    def num_tiles(self) -> int:
        return self.num_m_blocks * self.num_n_blocks

    @property
    def num_waves(self) -> int:
        return len(self.tiles_per_wave)

    @property
    def last_wave_tiles(self) -> int:
        """Busy SMs in the last wave (tiles, times ``split_k``); 0 for an empty problem."""
        counts = self.tiles_per_wave
        return counts[-1] if counts else 0

    @property
    def last_wave_occupancy(self) -> float:
        """Fraction of the SMs busy in the last wave."""
        return self.last_wave_tiles / self.num_sms

    @property
    def sm_efficiency(self) -> float:
        """Busy SM slots over the SM slots of all waves: 1.0 when every wave is full."""
        return sum(self.tiles_per_wave) / (self.num_waves * self.num_sms) if self.num_waves else 1.0


def plan_waves(
    m: int,
    n: int,
    block_m: int,
    block_n: int,
    num_sms: int,
    cluster: tuple[int, int] = (1, 1),
    group: int = 16,
    along_m: bool = True,
    split_k: int = 1,
) -> WavePlan:
    """The wave and CTA of every tile of an ``m x n`` output cut into ``block_m x block_n`` tiles.

    ``cluster``, ``group`` and ``along_m`` are the configuration's cluster shape and raster
    settings (:class:`cute_gemm.jit.GemmConfig`'s ``cluster_m, cluster_n``, ``raster_group``,
    ``raster_along_m``). With a cluster the units of the schedule are cluster tiles, so a wave holds
    ``num_sms // cluster size`` of them. With ``split_k > 1`` (no other cluster) each tile is
    computed by ``split_k`` CTAs, one per SM.
    """
    for name, value in (("m", m), ("n", n)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    for name, value in (("block_m", block_m), ("block_n", block_n), ("num_sms", num_sms)):
        if value <= 0:
            raise ValueError(f"{name} must be positive, got {value}")
    shape = (ceil_div(m, block_m), ceil_div(n, block_n))
    wave = [[-1] * shape[1] for _ in range(shape[0])]
    cta = [[-1] * shape[1] for _ in range(shape[0])]
    ctas, per_wave = set(), []
    if shape[0] and shape[1]:
        if split_k > 1:  # the K blocks do not change where tiles run: any count will do
            schedule = split_k_schedule(m, n, split_k, block_m, block_n, num_sms, group, along_m, split_k)
        else:
            schedule = normal_schedule(m, n, block_m, block_n, num_sms, group, along_m, tuple(cluster))
        for t in schedule:
            wave[t.m_block][t.n_block] = t.iteration
            cta[t.m_block][t.n_block] = t.cta - t.cta % split_k
            ctas.add(t.cta)
            per_wave.extend([0] * (t.iteration + 1 - len(per_wave)))
            per_wave[t.iteration] += 1
    return WavePlan(
        m, n, block_m, block_n, num_sms, tuple(cluster), shape[0], shape[1],
        tuple(tuple(r) for r in wave), tuple(tuple(r) for r in cta), len(ctas),
        tuple(per_wave), split_k,
    )


def occupancy_bar(busy: int, total: int, width: int = 44) -> str:
    """``[#####.....]``: ``busy`` of ``total`` slots, ``width`` characters wide."""
    filled = round(width * busy / total) if total else 0
    if busy and not filled:
        filled = 1
    if busy < total and filled == width:
        filled = width - 1
    return "[" + "#" * filled + "." * (width - filled) + "]"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def render_waves(
    m: int,
    n: int,
    block_m: int,
    block_n: int,
    num_sms: int,
    cluster: tuple[int, int] = (1, 1),
    group: int = 16,
    along_m: bool = True,
    max_cols: int = 64,
    max_rows: int = 32,
    split_k: int = 1,
) -> str:
    """The tile grid of an ``m x n`` output in text: which wave each tile runs in.

    Rows are M blocks, columns N blocks, one character per tile: its wave as ``0-9``, ``a-z``,
    ``A-Z``. A grid wider than ``max_cols`` or taller than ``max_rows`` is compressed: each
    character then covers a block of tiles and shows the *latest* wave among them (where the tail
    of the schedule lands); with more than 62 waves each symbol stands for several consecutive
    waves. The last lines give the tiles per wave and the last wave's occupancy of the
    ``num_sms`` SMs. For example ``render_waves(256, 7168, 64, 128, 132)``::

        256 x 7168 output, 64x128 tiles: 4 M blocks x 56 N blocks = 224 tiles on 132 SMs
        one character per tile: the wave it runs in (0-9, then a-z, A-Z)
             0         10        20        30        40        50       <- N block
        M  0 00000000000000000000000000000000011111111111111111111111
        M  1 00000000000000000000000000000000011111111111111111111111
        M  2 00000000000000000000000000000000011111111111111111111111
        M  3 00000000000000000000000000000000011111111111111111111111
        tiles per wave: 132, 92 (2 waves)
        last wave: 92 of 132 SMs busy (70%), 40 idle  [###############################.............]
        all waves: 224 tiles in 2 x 132 SM slots = 85% used
    """
    plan = plan_waves(m, n, block_m, block_n, num_sms, cluster, group, along_m, split_k)
    rows, cols = plan.num_m_blocks, plan.num_n_blocks
    cluster_text = "" if tuple(cluster) == (1, 1) else f", clusters of {cluster[0]}x{cluster[1]} CTAs"
    if split_k > 1:
        cluster_text += f", each split along K over {split_k} CTAs (SMs)"
    lines = [
        f"{m} x {n} output, {block_m}x{block_n} tiles{cluster_text}: "
        f"{_plural(rows, 'M block')} x {_plural(cols, 'N block')} = "
        f"{_plural(plan.num_tiles, 'tile')} on {num_sms} SMs"
    ]
    if plan.num_tiles == 0:
        lines.append("no tiles: the output is empty")
        return "\n".join(lines)
    waves = plan.num_waves
    per_symbol = ceil_div(waves, len(WAVE_SYMBOLS))
    step_m, step_n = ceil_div(rows, max(1, max_rows)), ceil_div(cols, max(1, max_cols))
    what = "the wave it runs in" if step_m == step_n == 1 else "the latest wave among them"
    cell = "tile" if step_m == step_n == 1 else f"{step_m} x {step_n} tiles (M x N)"
    symbols = "0-9, then a-z, A-Z" if per_symbol == 1 else f"0-9, a-z, A-Z: {per_symbol} waves each"
    lines.append(f"one character per {cell}: {what} ({symbols})")
    label = max(len(str(rows - 1)), 2)
    ticks = [" "] * ceil_div(cols, step_n)
    for c in range(0, len(ticks), 10):
        text = str(c * step_n)
        if c + len(text) <= len(ticks):
            ticks[c:c + len(text)] = text
    lines.append(" " * (label + 3) + "".join(ticks) + "   <- N block")
    for r0 in range(0, rows, step_m):
        cells = []
        for c0 in range(0, cols, step_n):
            latest = max(plan.wave[r][c] for r in range(r0, min(rows, r0 + step_m))
                         for c in range(c0, min(cols, c0 + step_n)))
            cells.append(wave_symbol(latest // per_symbol))
        lines.append(f"M {r0:>{label}d} " + "".join(cells))
    counts = plan.tiles_per_wave
    if waves <= 12:
        per_wave = ", ".join(str(c) for c in counts)
    elif len(set(counts[:-1])) == 1:
        per_wave = f"{counts[0]} in each of waves 0..{waves - 2}, {counts[-1]} in the last"
    else:
        per_wave = ", ".join(str(c) for c in counts[:6]) + f", ..., {counts[-1]} in the last"
    busy_what = "tiles" if split_k == 1 else f"CTAs ({split_k} per tile)"
    lines.append(f"{busy_what} per wave: {per_wave} ({_plural(waves, 'wave')})")
    busy = plan.last_wave_tiles
    lines.append(
        f"last wave: {busy} of {num_sms} SMs busy ({100 * busy / num_sms:.0f}%), "
        f"{num_sms - busy} idle  {occupancy_bar(busy, num_sms)}"
    )
    lines.append(
        f"all waves: {_plural(plan.num_tiles * split_k, 'CTA' if split_k > 1 else 'tile')} in "
        f"{waves} x {num_sms} SM slots = {100 * plan.sm_efficiency:.0f}% used"
    )
    return "\n".join(lines)
