"""The split-K schedule (schedulers.raster.split_k_range / schedulers.reference.split_k_schedule).

For seeded random shapes: every output tile is computed by exactly one cluster of ``split_k`` CTAs,
whose K ranges cover ``[0, num_k_blocks)`` exactly once in rank order with lengths differing by at
most one; the tile order is the dense schedule's; the CTAs of a unit are one cluster
(``cta // split_k`` equal, ranks 0..split_k-1) in the same iteration.
"""

import random

import pytest

from schedulers.raster import rasterize, split_k_range
from schedulers.reference import split_k_schedule


@pytest.mark.parametrize("num_k_blocks", [1, 2, 3, 4, 5, 7, 14, 56, 128, 129])
@pytest.mark.parametrize("split_k", [1, 2, 3, 4])
def test_split_k_range_covers_k_once(num_k_blocks, split_k):
    ranges = [split_k_range(num_k_blocks, split_k, r) for r in range(split_k)]
    covered = [kb for k0, n in ranges for kb in range(k0, k0 + n)]
    assert covered == list(range(num_k_blocks))
    lengths = [n for _, n in ranges]
    assert max(lengths) - min(lengths) <= 1 and min(lengths) >= 0


def _cases(count, seed=7):
    rng = random.Random(seed)
    for _ in range(count):
        yield (rng.randint(1, 600), 8 * rng.randint(1, 1200), rng.randint(1, 130),
               rng.choice((64, 128, 256)), rng.choice((32, 64, 96, 128, 160)),
               rng.randint(2, 132), rng.choice((1, 8, 16)), rng.choice((True, False)),
               rng.choice((2, 4)))


@pytest.mark.parametrize("case", list(_cases(150)))
def test_split_k_schedule(case):
    m, n, kb, bm, bn, num_sms, group, along_m, split_k = case
    tiles = split_k_schedule(m, n, kb, bm, bn, num_sms, group, along_m, split_k)
    num_m_blocks, num_n_blocks = -(-m // bm), -(-n // bn)
    # Units in the dense raster order, every tile once.
    units = [(t.m_block, t.n_block) for t in tiles[::split_k]]
    assert units == [rasterize(u, num_m_blocks, num_n_blocks, group, along_m) for u in range(len(units))]
    assert len(set(units)) == len(units) == num_m_blocks * num_n_blocks
    clusters = max(1, min(len(units), num_sms // split_k))
    for i in range(0, len(tiles), split_k):
        group_tiles = tiles[i:i + split_k]
        assert {(t.m_block, t.n_block, t.iteration) for t in group_tiles} == {
            (group_tiles[0].m_block, group_tiles[0].n_block, group_tiles[0].iteration)}
        assert [t.cta % split_k for t in group_tiles] == list(range(split_k))
        assert len({t.cta // split_k for t in group_tiles}) == 1
        assert all(t.cta // split_k < clusters for t in group_tiles)
        k_blocks = [kb_ for t in group_tiles for kb_ in range(t.k_block0, t.k_block0 + t.k_blocks)]
        assert k_blocks == list(range(kb))
    # Persistent rule: unit = iteration * clusters + cluster.
    for u, i in enumerate(range(0, len(tiles), split_k)):
        t = tiles[i]
        assert u == t.iteration * clusters + t.cta // split_k
