"""The MoE grouped schedules of schedulers.reference, on the CPU.

For a few hundred seeded random expert configurations and every raster setting:

- ``contiguous_schedule``: every (m_block, n_block) whose block's first row names an expert appears
  exactly once, carrying that expert; no tile for padding blocks; (cta, iteration) is the persistent
  rule over *all* tiles, padding included (``tile id = iteration * num_ctas + cta``).
- ``masked_schedule``: exactly the tiles ``(g, m_block < ceil(masked_m[g] / block_m), n_block)``,
  each once, expert by expert; none for rows at or past ``masked_m[g]``; the persistent rule over
  the units numbered expert by expert; the grid sized as if every expert were full.

The expectations are written here from the brief's definitions (only ``rasterize``, which has its
own tests in test_scheduler.py, is shared with the code under test).
"""

import math
import random

import pytest

from layouts.tiles import BLOCK_N_CHOICES
from schedulers.raster import rasterize
from schedulers.reference import (
    ScheduledTile,
    contiguous_psum_schedule,
    contiguous_schedule,
    masked_grid_size,
    masked_rows_in_tile,
    masked_schedule,
    normal_schedule,
)

GROUPS = (1, 2, 8, 16)
MAX_TILES = 4_000  # per random case: keeps the file well under a few seconds


def cdiv(a, b):
    return -(-a // b)


def expected_ctas(num_tiles, num_sms):
    return max(1, min(num_sms, num_tiles))


def raster_order(num_m_blocks, num_n_blocks, group, along_m):
    return [rasterize(t, num_m_blocks, num_n_blocks, group, along_m)
            for t in range(num_m_blocks * num_n_blocks)]


# ------------------------------------------------------------------------------------------------
# Random configurations


def random_sizes(rng, num_groups, hi):
    """Expert sizes mixing empty experts, tiny ones, exact multiples of 64/128 and large ones."""
    kind = rng.random()
    if kind < 0.08:
        return [0] * num_groups  # all empty
    sizes = []
    for _ in range(num_groups):
        r = rng.random()
        if r < 0.2:
            sizes.append(0)
        elif r < 0.35:
            sizes.append(rng.choice((1, 63, 64, 65, 127, 128, 129, 256)))
        elif r < 0.5:
            sizes.append(hi)
        else:
            sizes.append(rng.randint(1, hi))
    return sizes


def aligned_m_indices(sizes, alignment):
    """The DeepGEMM layout: each expert's rows, then -1 up to a multiple of ``alignment``."""
    rows = []
    for g, size in enumerate(sizes):
        rows += [g] * size + [-1] * (cdiv(size, alignment) * alignment - size)
    return rows


def blockwise_m_indices(rng, num_groups, num_blocks, block_m):
    """The kernel's weakest contract: each block_m block is one expert's rows then -1 (or all -1),
    experts in any order and repeated; the last block may be cut short (M_sum % block_m != 0)."""
    rows = []
    for _ in range(num_blocks):
        expert = -1 if rng.random() < 0.3 else rng.randrange(num_groups)
        valid = block_m if rng.random() < 0.5 else rng.randint(1, block_m)
        rows += [expert] * valid + [-1] * (block_m - valid)
    if rows and rng.random() < 0.5:
        rows = rows[: len(rows) - rng.randint(0, block_m - 1)]
    return rows


def random_tiling(rng):
    n = 8 * max(1, int(round(math.exp(rng.uniform(0, math.log(1500))))))
    block_m, block_n = rng.choice((64, 128)), rng.choice(BLOCK_N_CHOICES)
    num_sms = rng.choice((1, 132, rng.randint(1, 132)))
    return n, block_m, block_n, num_sms, rng.choice(GROUPS), rng.choice((True, False))


def contiguous_cases(count, seed):
    rng = random.Random(seed)
    cases = []
    while len(cases) < count:
        num_groups = rng.randint(1, 40)
        n, block_m, block_n, num_sms, group, along_m = random_tiling(rng)
        if rng.random() < 0.7:
            alignment = rng.choice((128, block_m))  # 128 = the public alignment; block_m = minimum
            sizes = random_sizes(rng, num_groups, rng.choice((8, 300)))
            m_indices = aligned_m_indices(sizes, alignment)
        else:
            m_indices = blockwise_m_indices(rng, num_groups, rng.randint(0, 30), block_m)
        if cdiv(len(m_indices), block_m) * cdiv(n, block_n) > MAX_TILES:
            continue
        cases.append((m_indices, n, block_m, block_n, num_sms, group, along_m))
    return cases


def masked_cases(count, seed):
    rng = random.Random(seed)
    cases = []
    while len(cases) < count:
        num_groups = rng.randint(1, 40)
        n, block_m, block_n, num_sms, group, along_m = random_tiling(rng)
        m_max = rng.choice((1, 64, 128, 200, 256, 1000, rng.randint(1, 600)))
        masked_m = random_sizes(rng, num_groups, m_max)
        masked_m = [min(m, m_max) for m in masked_m]
        if rng.random() < 0.2:
            masked_m[rng.randrange(num_groups)] = m_max  # a full expert
        if num_groups * cdiv(m_max, block_m) * cdiv(n, block_n) > MAX_TILES:
            continue
        cases.append((masked_m, m_max, n, block_m, block_n, num_sms, group, along_m))
    return cases


CONTIGUOUS_CASES = contiguous_cases(200, seed=1234) + [
    ([], 128, 128, 128, 132, 16, True),  # M_sum = 0
    ([-1] * 256, 4096, 128, 128, 132, 16, True),  # all padding
    ([0] * 128 + [-1] * 128 + [1] * 128, 7168, 128, 112, 132, 16, False),
    ([3] * 1 + [-1] * 127, 8, 64, 16, 1, 1, True),  # half a 128 block is padding for block_m 64
]
MASKED_CASES = masked_cases(200, seed=4321) + [
    ([0], 128, 256, 128, 128, 132, 16, True),  # one empty expert
    ([0] * 40, 4096, 7168, 128, 192, 132, 16, True),  # all empty, grid still 132
    ([4096] * 4, 4096, 7168, 128, 112, 132, 8, False),  # all full
    ([1, 0, 129, 128], 129, 40, 64, 16, 3, 2, True),
    ([5], 5, 8, 128, 16, 1, 1, True),  # masked_m == m_max, one tile
]


# ------------------------------------------------------------------------------------------------
# Contiguous


def check_contiguous(m_indices, n, block_m, block_n, num_sms, group, along_m):
    tiles = contiguous_schedule(m_indices, n, block_m, block_n, num_sms, group, along_m)
    m_sum = len(m_indices)
    num_m_blocks, num_n_blocks = cdiv(m_sum, block_m), cdiv(n, block_n)
    num_tiles = num_m_blocks * num_n_blocks
    num_ctas = expected_ctas(num_tiles, num_sms)
    block_expert = [m_indices[mb * block_m] for mb in range(num_m_blocks)]

    # Coverage: each real block x every N block exactly once, with its expert; nothing for padding.
    got = [(t.m_block, t.n_block) for t in tiles]
    assert len(got) == len(set(got))
    assert set(got) == {(mb, nb) for mb in range(num_m_blocks) if block_expert[mb] >= 0
                        for nb in range(num_n_blocks)}
    for t in tiles:
        assert t.group == block_expert[t.m_block] >= 0
    # Every row of a computed block that is not padding belongs to the block's expert.
    for mb in {t.m_block for t in tiles}:
        rows = m_indices[mb * block_m:(mb + 1) * block_m]
        assert set(rows) <= {block_expert[mb], -1}

    # Persistent rule over all tiles (padding tiles keep their slot), in raster order.
    order = raster_order(num_m_blocks, num_n_blocks, group, along_m)
    tile_id = {mn: i for i, mn in enumerate(order)}
    ids = []
    for t in tiles:
        assert 0 <= t.cta < num_ctas
        assert t.iteration * num_ctas + t.cta == tile_id[(t.m_block, t.n_block)]
        ids.append(tile_id[(t.m_block, t.n_block)])
    assert ids == sorted(ids)  # launch order: by iteration, then CTA


def _cid(case):
    m_indices, n, bm, bn, sms, g, along_m = case
    return f"msum{len(m_indices)}-n{n}-{bm}x{bn}-sms{sms}-g{g}-{'M' if along_m else 'N'}"


@pytest.mark.parametrize("case", CONTIGUOUS_CASES, ids=_cid)
def test_contiguous_schedule(case):
    check_contiguous(*case)


def test_contiguous_without_padding_is_the_normal_schedule():
    """With no -1 rows the contiguous schedule is the dense one, expert attached."""
    rng = random.Random(5)
    for _ in range(20):
        sizes = [rng.randint(1, 4) * 128 for _ in range(rng.randint(1, 12))]
        m_indices = aligned_m_indices(sizes, 128)
        n, block_m, block_n, num_sms, group, along_m = random_tiling(rng)
        tiles = contiguous_schedule(m_indices, n, block_m, block_n, num_sms, group, along_m)
        dense = normal_schedule(len(m_indices), n, block_m, block_n, num_sms, group, along_m)
        assert [(t.cta, t.iteration, t.m_block, t.n_block) for t in tiles] == [
            (t.cta, t.iteration, t.m_block, t.n_block) for t in dense
        ]
        assert all(t.group == m_indices[t.m_block * block_m] for t in tiles)


def test_contiguous_small_example():
    # Experts 0 (1 block), padding block, expert 2 (1 block); 2 N blocks; 3 SMs; row-major raster.
    m_indices = [0] * 128 + [-1] * 128 + [2] * 100 + [-1] * 28
    tiles = contiguous_schedule(m_indices, 256, 128, 128, 3, 1, True)
    # Tile ids 0..5 = (0,0) (0,1) (1,0) (1,1) (2,0) (2,1); ids 2 and 3 are padding.
    assert tiles == [
        ScheduledTile(0, 0, 0, 0, 0),
        ScheduledTile(1, 0, 0, 1, 0),
        ScheduledTile(1, 1, 2, 0, 2),
        ScheduledTile(2, 1, 2, 1, 2),
    ]


def test_contiguous_block_m_64_skips_padding_halves():
    # An expert of 10 rows padded to 128: with block_m 64 its second half-block is all padding.
    m_indices = [7] * 10 + [-1] * 118
    assert [(t.m_block, t.group) for t in contiguous_schedule(m_indices, 16, 64, 16, 4, 1, True)] \
        == [(0, 7)]
    assert [(t.m_block, t.group) for t in contiguous_schedule(m_indices, 16, 128, 16, 4, 1, True)] \
        == [(0, 7)]


# ------------------------------------------------------------------------------------------------
# Masked


def check_masked(masked_m, m_max, n, block_m, block_n, num_sms, group, along_m):
    tiles = masked_schedule(masked_m, m_max, n, block_m, block_n, num_sms, group, along_m)
    num_groups, num_n_blocks = len(masked_m), cdiv(n, block_n)
    num_ctas = expected_ctas(num_groups * cdiv(m_max, block_m) * num_n_blocks, num_sms)
    assert masked_grid_size(num_groups, m_max, n, block_m, block_n, num_sms) == num_ctas

    # Coverage: exactly the tiles holding valid rows, each once; none at or past masked_m[g].
    got = [(t.group, t.m_block, t.n_block) for t in tiles]
    assert len(got) == len(set(got))
    assert set(got) == {(g, mb, nb) for g in range(num_groups)
                        for mb in range(cdiv(masked_m[g], block_m)) for nb in range(num_n_blocks)}
    for t in tiles:
        assert t.m_block * block_m < masked_m[t.group] <= m_max

    # Order: expert by expert; inside an expert, the raster order over its own blocks.
    assert [t.group for t in tiles] == sorted(t.group for t in tiles)
    unit = 0
    for g in range(num_groups):
        mine = [(t.m_block, t.n_block) for t in tiles if t.group == g]
        assert mine == raster_order(cdiv(masked_m[g], block_m), num_n_blocks, group, along_m)
        # Persistent rule over units numbered expert by expert.
        for t in (t for t in tiles if t.group == g):
            assert 0 <= t.cta < num_ctas
            assert t.iteration * num_ctas + t.cta == unit
            unit += 1
    assert unit == sum(cdiv(m, block_m) for m in masked_m) * num_n_blocks == len(tiles)

    # Valid rows per tile: block_m except an expert's last M block; they add up to masked_m[g].
    rows = {}
    for t in tiles:
        r = masked_rows_in_tile(masked_m[t.group], t.m_block, block_m)
        assert 1 <= r <= block_m
        assert r == (masked_m[t.group] - t.m_block * block_m if (t.m_block + 1) * block_m
                     > masked_m[t.group] else block_m)
        if t.n_block == 0:
            rows[t.group] = rows.get(t.group, 0) + r
    assert all(rows.get(g, 0) == masked_m[g] for g in range(num_groups))


def _mid(case):
    masked_m, m_max, n, bm, bn, sms, g, along_m = case
    return (f"G{len(masked_m)}-mmax{m_max}-rows{sum(masked_m)}-n{n}-{bm}x{bn}-sms{sms}-g{g}-"
            f"{'M' if along_m else 'N'}")


@pytest.mark.parametrize("case", MASKED_CASES, ids=_mid)
def test_masked_schedule(case):
    check_masked(*case)


def test_random_cases_cover_every_setting():
    for cases, bm_i, bn_i, sms_i, g_i, m_i in ((CONTIGUOUS_CASES, 2, 3, 4, 5, 6),
                                               (MASKED_CASES, 3, 4, 5, 6, 7)):
        assert {c[bn_i] for c in cases} == set(BLOCK_N_CHOICES)
        assert {c[bm_i] for c in cases} == {64, 128}
        assert {c[g_i] for c in cases} >= set(GROUPS)
        assert {c[m_i] for c in cases} == {True, False}
        assert {1, 132} <= {c[sms_i] for c in cases}
    # Empty experts, all-empty configs, full experts and up to 40 experts really occur.
    assert any(0 in c[0] and any(c[0]) for c in MASKED_CASES)
    assert any(not any(c[0]) for c in MASKED_CASES)
    assert any(c[1] in c[0] for c in MASKED_CASES)
    assert max(len(c[0]) for c in MASKED_CASES) >= 35
    assert any(all(e == -1 for e in c[0]) and c[0] for c in CONTIGUOUS_CASES)
    assert any(len(c[0]) % c[2] for c in CONTIGUOUS_CASES)  # a partial last M block


def test_masked_small_example():
    # Experts of 130, 0 and 64 rows; block 128 x 128, n = 256 (2 N blocks); 4 SMs; row-major.
    tiles = masked_schedule([130, 0, 64], 200, 256, 128, 128, 4, 1, True)
    # Expert 0: units 0..3 = (0,0) (0,1) (1,0) (1,1); expert 1: none; expert 2: units 4, 5.
    assert tiles == [
        ScheduledTile(0, 0, 0, 0, 0),
        ScheduledTile(1, 0, 0, 1, 0),
        ScheduledTile(2, 0, 1, 0, 0),
        ScheduledTile(3, 0, 1, 1, 0),
        ScheduledTile(0, 1, 0, 0, 2),
        ScheduledTile(1, 1, 0, 1, 2),
    ]
    assert [masked_rows_in_tile(130, mb, 128) for mb in (0, 1)] == [128, 2]
    assert masked_rows_in_tile(64, 0, 128) == 64


def test_masked_grid_ignores_masked_m():
    """The grid depends on m_max only: the host never sees masked_m."""
    full = masked_schedule([256] * 3, 256, 1024, 128, 128, 132, 8, True)  # 3*2*8 = 48 units
    assert {t.cta for t in full} == set(range(48))
    # One small expert: still a 48-CTA grid, so its 8 units go to CTAs 0..7, iteration 0.
    small = masked_schedule([0, 5, 0], 256, 1024, 128, 128, 132, 8, True)
    assert [(t.cta, t.iteration) for t in small] == [(c, 0) for c in range(8)]
    assert masked_grid_size(3, 256, 1024, 128, 128, 132) == 48
    assert masked_grid_size(3, 256, 1024, 128, 128, 10) == 10
    assert masked_grid_size(0, 256, 1024, 128, 128, 132) == 1
    assert masked_grid_size(3, 0, 1024, 128, 128, 132) == 1
    # With 10 SMs the units wrap: unit u -> (u % 10, u // 10).
    tiles = masked_schedule([200, 0, 256], 256, 1024, 128, 128, 10, 8, True)
    assert [(t.cta, t.iteration) for t in tiles] == [(u % 10, u // 10) for u in range(32)]


@pytest.mark.parametrize("masked_m,m_max", [([129], 128), ([-1], 128), ([0, 5], 4)])
def test_masked_rejects_rows_outside_range(masked_m, m_max):
    with pytest.raises(ValueError, match=r"masked_m\[\d+\]"):
        masked_schedule(masked_m, m_max, 128, 128, 128, 132, 8, True)


def test_masked_rows_in_tile_formula():
    for block_m in (64, 128):
        for rows in range(0, 3 * block_m + 2):
            for mb in range(cdiv(rows, block_m)):
                got = masked_rows_in_tile(rows, mb, block_m)
                assert got == min(block_m, rows - mb * block_m)
                assert 1 <= got <= block_m


def test_dense_tiles_default_to_group_zero():
    assert ScheduledTile(1, 2, 3, 4) == ScheduledTile(1, 2, 3, 4, 0)
    assert all(t.group == 0 for t in normal_schedule(300, 300, 128, 128, 4, 2, True))


# ------------------------------------------------------------------------------------------------
# Contiguous, given as prefix sums (use_psum_layout)


def psum_of(sizes):
    """The end row of each expert in the 128-aligned stack (cute_gemm.moe.make_contiguous_psum)."""
    ends, start = [], 0
    for size in sizes:
        ends.append(start + size)
        start += cdiv(size, 128) * 128
    return ends


@pytest.mark.parametrize("seed", range(120))
def test_psum_schedule_is_the_contiguous_schedule(seed):
    # The same layout given both ways: the same tiles (cta, iteration, blocks, expert), and each
    # tile's valid rows are exactly its expert's rows in the m_indices form.
    rng = random.Random(seed)
    sizes = random_sizes(rng, rng.choice((1, 2, 3, 8, 17)), rng.choice((64, 300, 1000)))
    m_indices = aligned_m_indices(sizes, 128)
    n, block_m = 8 * rng.randint(1, 300), rng.choice((64, 128))
    block_n, num_sms = rng.choice(BLOCK_N_CHOICES), rng.randint(1, 132)
    group, along_m = rng.choice(GROUPS), rng.choice((True, False))
    pairs = contiguous_psum_schedule(psum_of(sizes), len(m_indices), n, block_m, block_n, num_sms, group, along_m)
    assert [t for t, _ in pairs] == contiguous_schedule(m_indices, n, block_m, block_n, num_sms, group, along_m)
    for t, rows in pairs:
        block = m_indices[t.m_block * block_m:(t.m_block + 1) * block_m]
        assert rows == sum(1 for e in block if e == t.group) and 1 <= rows <= block_m


def test_psum_small_example():
    # Experts of 3 and 130 rows: rows 0..2 and 128..257 of 384 (the cute_gemm.moe docstring).
    assert psum_of([3, 130]) == [3, 258]
    pairs = contiguous_psum_schedule([3, 258], 384, 128, 64, 128, 132, 16, True)
    assert [(t.m_block, t.group, rows) for t, rows in pairs] == [(0, 0, 3), (2, 1, 64), (3, 1, 64), (4, 1, 2)]
