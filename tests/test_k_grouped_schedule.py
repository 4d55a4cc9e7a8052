"""The k-grouped (weight-gradient) schedule of the plain-Python twin, enumerated tile by tile.

Proves for random expert counts and token splits (empty experts and all-empty included): every
``(expert, m_block, n_block)`` appears exactly once, in unit order (units numbered expert by
expert, ``unit = iteration * num_ctas + cta``), each expert's tiles in the dense raster order, and
each tile reads exactly its expert's K blocks (``k_block0 = sum(ks[:g]) / 128``, ``ks[g] / 128`` of
them), so the K ranges of an output tile's experts tile ``[0, sum(ks) / 128)`` without overlap.
"""

import random

import pytest

from schedulers.raster import rasterize
from schedulers.reference import ceil_div, grid_size, k_grouped_schedule


def random_case(seed):
    rng = random.Random(seed)
    num_groups = rng.choice([1, 2, 4, 8, 16, 32])
    ks = [128 * rng.choice([0, 0, 1, 3, 8, 17]) for _ in range(num_groups)]
    return dict(ks=ks, m=rng.randint(1, 700), n=8 * rng.randint(1, 90), block_m=rng.choice([64, 128]),
                block_n=rng.choice([16, 48, 112, 128, 160]), num_sms=rng.choice([1, 7, 132]),
                group=rng.choice([1, 8, 16]), along_m=rng.random() < 0.5)


@pytest.mark.parametrize("case", [random_case(s) for s in range(200)] + [
    dict(ks=[0, 0, 0], m=256, n=512, block_m=128, block_n=128, num_sms=132, group=16, along_m=True),
    dict(ks=[128], m=1, n=8, block_m=64, block_n=16, num_sms=132, group=8, along_m=False),
])
def test_k_grouped_schedule(case):
    ks, m, n, bm, bn = case["ks"], case["m"], case["n"], case["block_m"], case["block_n"]
    tiles = k_grouped_schedule(ks, m, n, bm, bn, case["num_sms"], case["group"], case["along_m"])
    num_m, num_n = ceil_div(m, bm), ceil_div(n, bn)
    per_expert = num_m * num_n
    num_ctas = grid_size(len(ks) * per_expert, case["num_sms"])
    assert len(tiles) == len(ks) * per_expert
    assert len({(t.group, t.m_block, t.n_block) for t in tiles}) == len(tiles)
    for unit, t in enumerate(tiles):
        g, local = divmod(unit, per_expert)
        assert (t.cta, t.iteration) == (unit % num_ctas, unit // num_ctas)
        assert t.group == g
        assert (t.m_block, t.n_block) == rasterize(local, num_m, num_n, case["group"], case["along_m"])
        assert (t.k_block0, t.k_blocks) == (sum(ks[:g]) // 128, ks[g] // 128)
    # Per output tile position, the experts' K ranges tile the stacked K exactly once.
    covered = {}
    for t in tiles:
        covered.setdefault((t.m_block, t.n_block), []).extend(range(t.k_block0, t.k_block0 + t.k_blocks))
    assert all(sorted(blocks) == list(range(sum(ks) // 128)) for blocks in covered.values())


@pytest.mark.parametrize("ks", [[100], [128, -128], [64, 64]])
def test_rejects_bad_ks(ks):
    with pytest.raises(ValueError, match="ks"):
        k_grouped_schedule(ks, 128, 128, 128, 128, 132, 16, True)
