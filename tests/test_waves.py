"""The tile/wave picture (cute_gemm.waves) and the `explain` command that prints it, on the CPU."""

import random
import re

import pytest

from cute_gemm import heuristics
from cute_gemm.__main__ import main
from cute_gemm.device import get_num_sms
from cute_gemm.waves import WAVE_SYMBOLS, plan_waves, render_waves, wave_symbol
from schedulers.reference import ceil_div

SHAPES = [(256, 7168, 128, 112), (256, 7168, 64, 128), (256, 7168, 256, 128), (4096, 7168, 128, 160),
          (1, 8, 64, 16), (4097, 2112, 128, 96), (129, 24576, 256, 112)]


def grid_of(text):
    """The rows of wave characters of a rendered picture (lines ``M <row> <chars>``)."""
    return [line.split()[-1] for line in text.splitlines() if re.match(r"M +\d+ ", line)]


def random_shapes(count, seed=5):
    rng = random.Random(seed)
    for _ in range(count):
        bm = rng.choice((64, 128, 256))
        bn = rng.choice((16, 32, 64, 96, 112, 128, 144, 160, 192))
        yield rng.randint(1, 4000), 8 * rng.randint(1, 1000), bm, bn, rng.choice((132, 114, 78, 16, 7))


@pytest.mark.parametrize("m, n, bm, bn", SHAPES)
def test_plan_matches_the_heuristic_wave_count(m, n, bm, bn):
    plan = plan_waves(m, n, bm, bn, 132)
    tiles = ceil_div(m, bm) * ceil_div(n, bn)
    assert (plan.num_m_blocks, plan.num_n_blocks) == (ceil_div(m, bm), ceil_div(n, bn))
    assert plan.num_tiles == tiles == sum(plan.tiles_per_wave)
    assert plan.num_waves == ceil_div(tiles, 132)
    assert plan.last_wave_tiles == tiles - (plan.num_waves - 1) * 132
    assert plan.num_ctas == min(tiles, 132)


def test_plan_agrees_with_every_heuristic_candidate():
    for m, n, k in ((256, 7168, 7168), (64, 2112, 7168), (4096, 7168, 16384), (513, 4096, 512)):
        for c in heuristics.candidates(m, n, k, 132):
            plan = plan_waves(m, n, c.block_m, c.block_n, 132)
            assert (plan.num_tiles, plan.num_waves, plan.last_wave_tiles) == (
                c.num_tiles, c.waves, c.last_wave_tiles)


def test_random_plans_cover_every_tile_once_per_wave_slot():
    for m, n, bm, bn, sms in random_shapes(60):
        plan = plan_waves(m, n, bm, bn, sms)
        seen = set()
        for r in range(plan.num_m_blocks):
            for c in range(plan.num_n_blocks):
                w, cta = plan.wave[r][c], plan.cta[r][c]
                assert 0 <= w < plan.num_waves and 0 <= cta < plan.num_ctas
                assert (w, cta) not in seen  # one tile per CTA per wave
                seen.add((w, cta))
        assert all(0 < count <= sms for count in plan.tiles_per_wave)
        assert all(count == plan.num_ctas for count in plan.tiles_per_wave[:-1])  # full waves


@pytest.mark.parametrize("cluster", [(2, 1), (1, 2)])
def test_cluster_plans(cluster):
    for m, n, bm, bn, sms in random_shapes(30, seed=cluster[0]):
        plan = plan_waves(m, n, bm, bn, sms, cluster=cluster)
        assert plan.num_tiles == sum(plan.tiles_per_wave)
        assert all(count <= (sms // 2) * 2 for count in plan.tiles_per_wave)
        assert all(w >= 0 for row in plan.wave for w in row)  # every tile scheduled
        assert plan.wave[0][0] == 0


def test_render_one_character_per_tile():
    text = render_waves(256, 7168, 64, 128, 132)
    rows = grid_of(text)
    plan = plan_waves(256, 7168, 64, 128, 132)
    assert rows == ["".join(wave_symbol(w) for w in row) for row in plan.wave]
    assert rows[0] == "0" * 33 + "1" * 23  # 132 tiles of the first wave sweep 33 N blocks x 4 M blocks
    assert "224 tiles on 132 SMs" in text
    assert "tiles per wave: 132, 92 (2 waves)" in text
    assert "last wave: 92 of 132 SMs busy (70%), 40 idle" in text
    assert "85% used" in text


def test_render_the_notebook_shape():
    text = render_waves(256, 7168, 128, 112, 132)
    assert grid_of(text) == ["0" * 64] * 2
    assert "last wave: 128 of 132 SMs busy (97%), 4 idle" in text


def test_render_compresses_large_grids_to_the_limits():
    text = render_waves(16384, 32768, 128, 64, 132, max_cols=40, max_rows=10)
    rows = grid_of(text)
    assert 0 < len(rows) <= 10 and all(0 < len(r) <= 40 for r in rows)
    assert "one character per 13 x 13 tiles" in text
    # 497 waves: 62 symbols cannot name each one, so each stands for ceil(497 / 62) = 9 waves.
    assert "9 waves each" in text
    assert rows[-1][-1] == wave_symbol(496 // 9)
    assert "132 in each of waves 0..495, 64 in the last (497 waves)" in text


def test_render_latest_wave_of_a_compressed_cell():
    plan = plan_waves(4096, 7168, 128, 160, 132)
    rows = grid_of(render_waves(4096, 7168, 128, 160, 132, max_cols=15, max_rows=8))
    for i, row in enumerate(rows):
        for j, ch in enumerate(row):
            cell = [plan.wave[r][c] for r in range(4 * i, 4 * i + 4) for c in range(3 * j, 3 * j + 3)]
            assert ch == wave_symbol(max(cell))


def test_render_empty_and_tiny():
    assert "no tiles" in render_waves(0, 7168, 128, 112, 132)
    tiny = render_waves(1, 8, 64, 16, 132)
    assert grid_of(tiny) == ["0"]
    assert "1 M block x 1 N block = 1 tile on 132 SMs" in tiny
    assert "last wave: 1 of 132 SMs busy (1%), 131 idle" in tiny


def test_wave_symbols():
    assert [wave_symbol(w) for w in (0, 9, 10, 35, 36, 61)] == list("09azAZ")
    assert wave_symbol(len(WAVE_SYMBOLS)) == "+"


def test_bad_arguments():
    with pytest.raises(ValueError, match="block_n"):
        plan_waves(256, 7168, 128, 0, 132)
    with pytest.raises(ValueError, match="m must"):
        plan_waves(-1, 7168, 128, 128, 132)


def test_explain_prints_the_picture_of_the_chosen_tile(capsys):
    sms = get_num_sms()
    assert main(["explain", "--m", "256", "--n", "7168", "--k", "7168"]) == 0
    out = capsys.readouterr().out
    config = heuristics.choose_config(256, 7168, 7168, sms)
    assert out.startswith(heuristics.explain(256, 7168, 7168, sms))
    assert render_waves(256, 7168, config.block_m, config.block_n, sms) in out
    assert f"{config.block_m}x{config.block_n} tiles" in out


@pytest.mark.parametrize("split_k", [2, 3, 4])
def test_split_k_plans_count_ctas(split_k):
    # Each tile takes split_k SMs of its wave; the wave count matches the heuristic's split candidates.
    for m, n, bm, bn, sms in random_shapes(30, seed=split_k):
        plan = plan_waves(m, n, bm, bn, sms, split_k=split_k)
        assert sum(plan.tiles_per_wave) == plan.num_tiles * split_k
        assert all(count <= (sms // split_k) * split_k for count in plan.tiles_per_wave)
        assert all(cta % split_k == 0 for row in plan.cta for cta in row)
    for c in heuristics.candidates(64, 4096, 7168, 132, split_k_allowed=True):
        plan = plan_waves(64, 4096, c.block_m, c.block_n, 132, split_k=c.split_k)
        assert (plan.num_waves, plan.last_wave_tiles) == (c.waves, c.last_wave_tiles)


def test_render_split_k():
    text = render_waves(64, 4096, 64, 64, 132, split_k=2)
    assert "each split along K over 2 CTAs (SMs)" in text
    assert "CTAs (2 per tile) per wave: 128 (1 wave)" in text
    assert "last wave: 128 of 132 SMs busy" in text and "all waves: 128 CTAs in 1 x 132 SM slots = 97% used" in text


def test_explain_draws_the_split(capsys):
    assert main(["explain", "--m", "64", "--n", "4096", "--k", "7168"]) == 0
    out = capsys.readouterr().out
    if heuristics.choose_config(64, 4096, 7168, get_num_sms()).split_k == 2:
        assert "split 2  <- chosen" in out and "each split along K over 2 CTAs" in out
