"""The persistent tile schedule (schedulers.raster / schedulers.reference), on the CPU.

Proves, for a few hundred seeded random shapes and every raster setting, that ``normal_schedule``
covers every output tile exactly once, that each tile's (cta, iteration) is the persistent rule
``tile id = iteration * num_ctas + cta``, that the grid is ``max(1, min(tiles, SMs))``, and that the
tile order is exactly the grouped order documented in ``schedulers/raster.py`` (checked against an
independent generator written from that docstring, and against the docstring's own 5 x 3 example).
"""

import math
import random
import re

import pytest

import schedulers.raster as raster
from layouts.tiles import BLOCK_N_CHOICES
from schedulers.raster import rasterize
from schedulers.reference import ScheduledTile, grid_size, normal_schedule

GROUPS = (1, 2, 8, 16)
MAX_RANDOM_TILES = 40_000


def documented_order(num_m_blocks, num_n_blocks, group, along_m):
    """The docstring's order, written as nested loops: bands of ``group`` primary blocks, one band
    after the other; inside a band the primary block moves fastest, then the secondary block."""
    primary, secondary = (num_m_blocks, num_n_blocks) if along_m else (num_n_blocks, num_m_blocks)
    order = []
    for first in range(0, primary, group):
        band = range(first, min(first + group, primary))  # a short last band has fewer blocks
        for s in range(secondary):
            for p in band:
                order.append((p, s) if along_m else (s, p))
    return order


def _log_uniform(rng, lo, hi):
    return int(round(math.exp(rng.uniform(math.log(lo), math.log(hi)))))


def random_cases(count, seed):
    """Seeded shapes: M in [1, 20000], N a multiple of 8 in [8, 40000] (log-uniform, so most
    schedules are small), every tile and raster setting; at most MAX_RANDOM_TILES tiles each."""
    rng = random.Random(seed)
    cases = []
    while len(cases) < count:
        m = max(1, min(20000, _log_uniform(rng, 1, 20000)))
        n = 8 * max(1, min(5000, _log_uniform(rng, 1, 5000)))
        block_m, block_n = rng.choice((64, 128)), rng.choice(BLOCK_N_CHOICES)
        num_sms, group, along_m = rng.randint(1, 132), rng.choice(GROUPS), rng.choice((True, False))
        if -(-m // block_m) * -(-n // block_n) > MAX_RANDOM_TILES:
            continue  # keep the file fast; EDGE_CASES hold the largest shapes
        cases.append((m, n, block_m, block_n, num_sms, group, along_m))
    return cases


# A few shapes at the edges of the range, then random ones.
EDGE_CASES = [
    (1, 8, 64, 16, 1, 1, True),
    (1, 8, 128, 192, 132, 16, False),
    (20000, 40000, 128, 192, 132, 16, True),  # the largest M and N (157 x 209 tiles)
    (20000, 40000, 128, 192, 132, 8, False),
    (4096, 7168, 128, 112, 132, 16, True),  # DeepSeek-V3-like
    (4097, 2112, 128, 144, 132, 2, True),  # one partial M block
    (64, 24576, 64, 128, 132, 16, True),  # fewer M blocks than the group
    (129, 576, 128, 160, 7, 8, False),
    (1000, 4096, 128, 128, 7, 16, True),  # many persistent iterations
    (300, 40, 64, 16, 100, 2, True),  # 5 x 3 tiles on 100 SMs: more SMs than tiles
]
CASES = EDGE_CASES + random_cases(300, seed=20240607)


def _ids(case):
    m, n, bm, bn, sms, g, along_m = case
    return f"m{m}-n{n}-{bm}x{bn}-sms{sms}-g{g}-{'M' if along_m else 'N'}"


def check_schedule(m, n, block_m, block_n, num_sms, group, along_m):
    num_m_blocks, num_n_blocks = -(-m // block_m), -(-n // block_n)
    num_tiles = num_m_blocks * num_n_blocks
    tiles = normal_schedule(m, n, block_m, block_n, num_sms, group, along_m)

    # Grid: never more CTAs than tiles, never more than SMs, at least one.
    num_ctas = grid_size(num_tiles, num_sms)
    assert num_ctas == max(1, min(num_tiles, num_sms))
    assert 1 <= num_ctas <= num_sms and num_ctas <= max(1, num_tiles)

    # Coverage: every (m_block, n_block) exactly once, nothing outside the output.
    coords = [(t.m_block, t.n_block) for t in tiles]
    assert len(tiles) == num_tiles
    assert len(set(coords)) == num_tiles
    assert set(coords) == {(i, j) for i in range(num_m_blocks) for j in range(num_n_blocks)}

    # Persistent rule: position in launch order is the tile id = iteration * num_ctas + cta.
    for tile_id, t in enumerate(tiles):
        assert 0 <= t.cta < num_ctas
        assert t.iteration * num_ctas + t.cta == tile_id
    # Every CTA launched gets work; their iteration counts differ by at most one.
    per_cta = [0] * num_ctas
    for t in tiles:
        per_cta[t.cta] += 1
    assert min(per_cta) >= 1 and max(per_cta) - min(per_cta) <= 1
    assert max(per_cta) == -(-num_tiles // num_ctas)

    # Order: exactly the documented grouped order.
    assert coords == documented_order(num_m_blocks, num_n_blocks, group, along_m)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_normal_schedule(case):
    check_schedule(*case)


def test_random_cases_cover_every_setting():
    """The random draw really exercises every tile width, group, direction and both BLOCK_Ms."""
    assert {c[3] for c in CASES} == set(BLOCK_N_CHOICES)
    assert {c[5] for c in CASES} == set(GROUPS)
    assert {c[6] for c in CASES} == {True, False}
    assert {c[2] for c in CASES} == {64, 128}
    assert any(c[4] == 1 for c in CASES) and any(c[4] == 132 for c in CASES)


DOC_EXAMPLE = [
    (0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (1, 2),  # band 0
    (2, 0), (3, 0), (2, 1), (3, 1), (2, 2), (3, 2),  # band 1
    (4, 0), (4, 1), (4, 2),  # band 2: a short last band
]


def test_docstring_example_literally():
    got = [rasterize(t, 5, 3, 2, True) for t in range(15)]
    assert got == DOC_EXAMPLE
    assert documented_order(5, 3, 2, True) == DOC_EXAMPLE


def test_docstring_example_text_matches_rasterize():
    """The picture in the module docstring is the real order (it cannot silently go stale)."""
    bands = re.findall(r"band \d+: ((?:\(\d+,\d+\) ?)+)", raster.__doc__)
    assert len(bands) == 3
    pictured = [
        (int(a), int(b)) for band in bands for a, b in re.findall(r"\((\d+),(\d+)\)", band)
    ]
    assert pictured == DOC_EXAMPLE


def test_docstring_example_as_schedule():
    # 5 x 3 tiles of 128 x 128 on 4 SMs: CTA c does tiles c, c + 4, c + 8, ...
    tiles = normal_schedule(5 * 128, 3 * 128, 128, 128, 4, 2, True)
    assert tiles[:5] == [
        ScheduledTile(0, 0, 0, 0),
        ScheduledTile(1, 0, 1, 0),
        ScheduledTile(2, 0, 0, 1),
        ScheduledTile(3, 0, 1, 1),
        ScheduledTile(0, 1, 0, 2),
    ]
    assert [(t.m_block, t.n_block) for t in tiles if t.cta == 2] == [(0, 1), (2, 0), (2, 2), (4, 2)]


@pytest.mark.parametrize("group", GROUPS + (3, 100))
@pytest.mark.parametrize("num_m_blocks,num_n_blocks", [(1, 1), (5, 3), (3, 5), (7, 16), (17, 2)])
def test_along_n_is_the_transpose(num_m_blocks, num_n_blocks, group):
    """along_m=False is along_m=True with the roles of M and N swapped."""
    for t in range(num_m_blocks * num_n_blocks):
        m_block, n_block = rasterize(t, num_m_blocks, num_n_blocks, group, False)
        assert (n_block, m_block) == rasterize(t, num_n_blocks, num_m_blocks, group, True)


def test_along_n_schedule_is_the_transpose():
    m, n, bm, bn = 1000, 3000, 128, 96
    along_n = normal_schedule(m, n, bm, bn, 13, 8, False)
    along_m = normal_schedule(n, m, bn, bm, 13, 8, True)
    assert [(t.cta, t.iteration, t.n_block, t.m_block) for t in along_n] == [
        (t.cta, t.iteration, t.m_block, t.n_block) for t in along_m
    ]
    # The docstring example with M and N swapped.
    assert [rasterize(t, 3, 5, 2, False) for t in range(15)] == [(n, m) for m, n in DOC_EXAMPLE]


def test_degenerate_groups():
    # group = 1 along M: plain row-major (N fastest); a group covering all of M: M fastest.
    assert [rasterize(t, 3, 4, 1, True) for t in range(12)] == [
        (i, j) for i in range(3) for j in range(4)
    ]
    assert [rasterize(t, 3, 4, 16, True) for t in range(12)] == [
        (i, j) for j in range(4) for i in range(3)
    ]


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("along_m", (True, False))
def test_precomputed_divisors_give_the_documented_order(group, along_m):
    """The kernel passes the two run-time divisors precomputed (FastDivmod); given as plain ints
    they must reproduce the documented order for every shape, short last bands included."""
    for num_m_blocks in range(1, 37):
        for num_n_blocks in (1, 2, 3, 7, 16, 17):
            primary, secondary = (num_m_blocks, num_n_blocks) if along_m else (num_n_blocks, num_m_blocks)
            divisors = (group * secondary, raster.last_band_width(primary, group))
            order = [
                rasterize(t, num_m_blocks, num_n_blocks, group, along_m, min, *divisors)
                for t in range(num_m_blocks * num_n_blocks)
            ]
            assert order == documented_order(num_m_blocks, num_n_blocks, group, along_m)


def test_last_band_width():
    """The primary blocks of the last band: ``group`` when the bands divide evenly, never 0 (a
    FastDivmod divisor), also for an empty mode."""
    for group in GROUPS:
        assert raster.last_band_width(0, group) == group
        for primary in range(1, 100):
            expected = primary - (math.ceil(primary / group) - 1) * group
            assert raster.last_band_width(primary, group) == expected
            assert 1 <= expected <= group


@pytest.mark.parametrize(
    "num_tiles,num_sms,expected", [(0, 132, 1), (1, 132, 1), (131, 132, 131), (132, 132, 132),
                                   (133, 132, 132), (10**6, 132, 132), (5, 1, 1), (0, 1, 1)]
)
def test_grid_size(num_tiles, num_sms, expected):
    assert grid_size(num_tiles, num_sms) == expected


@pytest.mark.parametrize("cluster", [(2, 1), (1, 2)])
def test_cluster_schedule_covers_every_tile_once(cluster):
    rng = random.Random(7 + cluster[0])
    for _ in range(30):
        m, n = rng.randint(1, 9000), 8 * rng.randint(1, 3000)
        bm, bn = rng.choice((64, 128)), rng.choice(BLOCK_N_CHOICES)
        num_sms, group, along_m = rng.randint(2, 132), rng.choice((1, 2, 8, 16)), rng.random() < 0.5
        tiles = normal_schedule(m, n, bm, bn, num_sms, group, along_m, cluster)
        expected = {(i, j) for i in range(-(-m // bm)) for j in range(-(-n // bn))}
        got = [(t.m_block, t.n_block) for t in tiles]
        assert len(got) == len(set(got)) and set(got) == expected
        # The CTAs of one cluster compute neighbouring tiles in the same iteration.
        by_slot = {}
        for t in tiles:
            by_slot.setdefault((t.iteration, t.cta // cluster[0] if cluster[0] > 1 else t.cta), []).append(t)
        for group_tiles in by_slot.values():
            assert len(group_tiles) <= cluster[0] * cluster[1]
