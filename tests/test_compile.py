"""Compile every supported configuration for sm_90a (no GPU) and check what ptxas built.

Dense inference tiles (with the heuristic's stages and clusters; those that promote in place also
with N and K compiled in, as the heuristic offers them), the m-grouped kinds, and the
training variants: every tile legal with per-row (1x128) B scales, fp32 out, accumulating into D;
fp32 out with 128x128 B scales; and the k-grouped kind. Split-K: every tile up to 128 wide whose
epilogue pieces a split of 2, 3 or 4 divides (the heuristic offers 2), and the training variant split.
"""

import itertools
import re

import pytest

from cute_gemm import heuristics
from cute_gemm.bench import DEEPSEEK_V3_NK, suite_shapes
from cute_gemm.heuristics import choose_stages
from cute_gemm.jit import GemmConfig, Variant
from cute_gemm.kernels.fp8_gemm_sm90 import SMEM_CAPACITY, epilogue_pieces, lagged_promotion, max_stages
from cute_gemm.sass import compile_report
from layouts.scales import BLOCK_SFB_FLOATS
from layouts.tiles import legal_tiles
from schedulers.raster import GemmKind

CONFIGS = [
    GemmConfig(bm, bn, max_stages(bm, bn)) for bm, bn in legal_tiles()
] + [  # the heuristic's stages where they differ: a whole-tile epilogue instead of a ring
    GemmConfig(bm, bn, choose_stages(bm, bn, 512)) for bm, bn in legal_tiles()
    if choose_stages(bm, bn, 512) != max_stages(bm, bn)
] + [  # the fewest stages: in place at 2, lagged from 3 (the math warps hold two stages)
    GemmConfig(bm, bn, stages) for bm, bn in ((128, 128), (128, 112), (64, 64)) for stages in (2, 3)
] + [
    GemmConfig(bm, bn, max_stages(bm, bn), *cluster)
    for bm, bn in ((128, 128), (128, 160), (64, 112))
    for cluster in ((2, 1), (1, 2))
] + [
    GemmConfig(bm, bn, max_stages(bm, bn), kind=kind)
    for bm, bn in ((128, 128), (128, 160), (64, 112), (64, 32))
    for kind in (GemmKind.M_GROUPED_CONTIGUOUS, GemmKind.M_GROUPED_CONTIGUOUS_PSUM, GemmKind.M_GROUPED_MASKED)
] + [  # 256-row masked tiles (experts said to be full: heuristics.masked_full_tiles)
    GemmConfig(256, bn, choose_stages(256, bn, k), kind=GemmKind.M_GROUPED_MASKED)
    for bn, k in ((128, 7168), (112, 2048), (96, 7168))
]
_OFFERED_AT_7168 = [GemmConfig(bm, bn, choose_stages(bm, bn, 7168), static_nk=(7168, 7168))
                    for bm, widths in heuristics.EFFICIENCY.items() for bn in widths]
CONFIGS += list(dict.fromkeys(  # N and K compiled in: every in-place tile the heuristic offers, and its DeepSeek-V3 choices
    [c for c in _OFFERED_AT_7168 if not lagged_promotion(c.block_m, c.block_n, c.stages)]
    + [c for c in (heuristics.choose_config(*shape, 132) for shape in suite_shapes()) if c.static_nk]
))
TRAINING = dict(b_scale_rows=1, out_dtype="fp32")
CONFIGS += [
    GemmConfig(bm, bn, max_stages(bm, bn, **TRAINING), **TRAINING, accumulate=True)
    for bm, bn in legal_tiles(b_scale_rows=1)
] + [
    GemmConfig(bm, bn, max_stages(bm, bn, **TRAINING), kind=GemmKind.K_GROUPED, **TRAINING, accumulate=acc)
    for bm, bn in ((128, 128), (128, 160), (64, 112))
    for acc in (True, False)
] + [
    GemmConfig(bm, bn, max_stages(bm, bn, out_dtype="fp32"), out_dtype="fp32", accumulate=acc)
    for bm, bn in ((256, 128), (128, 160), (64, 112))
    for acc in (True, False)
] + [GemmConfig(128, 128, max_stages(128, 128, b_scale_rows=1), b_scale_rows=1)]
CONFIGS += list(dict.fromkeys(  # the last M tile moved up: the heuristic's choices for ragged M
    heuristics.choose_config(m, n, k, 132) for m in (80, 129, 4097) for n, k in DEEPSEEK_V3_NK
))
CONFIGS += list(dict.fromkeys(  # A boxes of 8 to 56 rows: the heuristic's decoding choices
    [heuristics.choose_config(1, n, k, 132) for n, k in DEEPSEEK_V3_NK]
    + [heuristics.choose_config(m, n, k, 132) for m in (16, 24, 32, 40, 48, 56) for n, k in ((4096, 7168), (7168, 2048))]
))
SPLIT_K_CONFIGS = [
    GemmConfig(bm, bn, max_stages(bm, bn, split_k=split), split_k=split)
    for bm, bn in legal_tiles() if bm <= 128 and bn <= 128
    for split in (2, 3, 4) if epilogue_pieces(bm, bn) % split == 0
] + [GemmConfig(128, 128, max_stages(128, 128, **TRAINING, split_k=2), split_k=2, **TRAINING, accumulate=True)]
CONFIGS += SPLIT_K_CONFIGS
BF16 = dict(ab_dtype="bf16")
CONFIGS += [
    GemmConfig(bm, bn, max_stages(bm, bn, **BF16), **BF16) for bm, bn in legal_tiles()
] + [
    GemmConfig(bm, bn, max_stages(bm, bn, **BF16), kind=kind, **BF16)
    for bm, bn in ((128, 128), (64, 112))
    for kind in (GemmKind.M_GROUPED_CONTIGUOUS, GemmKind.M_GROUPED_MASKED)
] + [GemmConfig(128, 128, max_stages(128, 128, out_dtype="fp32", **BF16), out_dtype="fp32", accumulate=True, **BF16)
] + [  # bf16 operands stored M- or N-contiguous (NN, TN, TT)
    GemmConfig(bm, bn, max_stages(bm, bn, **BF16), **BF16, a_major=a_major, b_major=b_major)
    for bm, bn in ((128, 128), (128, 112), (64, 48), (256, 128))
    for a_major, b_major in (("k", "mn"), ("mn", "k"), ("mn", "mn"))
] + [  # the heuristic's 256-row BF16 tiles: a 1x2 cluster multicasting A, in every layout
    heuristics.choose_config(8192, 8192, 8192, 132, Variant(ab_dtype="bf16", a_major=a_major, b_major=b_major))
    for a_major, b_major in itertools.product(("k", "mn"), repeat=2)
]
CONFIGS = list(dict.fromkeys(CONFIGS))  # each configuration compiled once, whichever list offers it


def _config_id(c):
    variant = "" if c.b_scale_rows == 128 else "-sfb1x128"
    variant += "" if c.ab_dtype == "fp8" else f"-{c.ab_dtype}"
    variant += "" if (c.a_major, c.b_major) == ("k", "k") else f"-{c.a_major}{c.b_major}"
    variant += "" if c.out_dtype == "bf16" else f"-{c.out_dtype}" + ("-acc" if c.accumulate else "")
    variant += "" if c.split_k == 1 else f"-split{c.split_k}"
    variant += "" if c.static_nk is None else "-n{}k{}".format(*c.static_nk)
    variant += "" if c.a_box_rows is None else f"-abox{c.a_box_rows}"
    variant += "-shift" if c.shift_last_m_tile else ""
    return f"{c.kind.name.lower()}-{c.block_m}x{c.block_n}x{c.stages}-c{c.cluster_m}x{c.cluster_n}{variant}"


@pytest.fixture(scope="module", params=CONFIGS, ids=_config_id)
def report(request):
    return compile_report(request.param)


def test_no_register_spills(report):
    assert report.stack_bytes == 0, report.summary()
    assert report.spills == 0, report.summary()


def test_tensor_core_and_tma_instructions(report):
    o = report.opcodes
    # One K block = 4 x wgmma m64nNk32 (FP8, BLOCK_K = 128) or m64nNk16 (BF16, BLOCK_K = 64) per
    # 128-row wave.
    waves = max(1, report.config.block_m // 128)
    mma = "QGMMA" if report.config.ab_dtype == "fp8" else "HGMMA"
    assert o[mma] >= 4 * waves and o[mma] % 4 == 0, report.summary()
    loads = {"bf16": 2, "fp8": 4 if report.config.b_scale_rows == 1 else 3}[report.config.ab_dtype]
    assert o["UTMALDG"] >= loads, report.summary()  # A, B (SFA, SFB)
    if report.config.cluster_m * report.config.cluster_n > 1:
        assert any(op.startswith("UTMALDG") for op in o) and ".MULTICAST" in report.sass
    store = "UTMAREDG" if report.config.accumulate else "UTMASTG"  # reduce-add or plain TMA store
    assert o[store] >= 1, report.summary()
    assert o["USETMAXREG"] == 2, report.summary()  # producer down, math up


def test_wgmma_not_serialised(report):
    """ptxas keeps WGMMAs in flight: at most one full wait (``WARPGROUP.DEPBAR.LE gsb0, 0x0``) per
    4 WGMMAs (one K block of a wave). When ptxas serialises them (remark C7514, e.g. a register
    of an in-flight WGMMA read before its wait) it puts a full wait after every one."""
    c = report.config
    mma = "QGMMA" if c.ab_dtype == "fp8" else "HGMMA"
    full_waits = len(re.findall(r"WARPGROUP\.DEPBAR\.LE gsb0, 0x0", report.sass))
    if c.ab_dtype == "bf16" and c.block_n < heuristics.BF16_MIN_BLOCK_N:
        # Serialised (C7514): compiled for explicit configs only; the heuristic never offers them.
        variant = Variant(c.b_scale_rows, c.out_dtype, c.accumulate, c.ab_dtype, c.a_major, c.b_major)
        assert all(x.block_n >= heuristics.BF16_MIN_BLOCK_N
                   for x in heuristics.candidates(4096, 4096, 4096, 132, variant=variant))
        return
    assert full_waits <= report.opcodes[mma] // 4, (full_waits, report.summary())


def test_promotion_reads_per_thread_scales(report):
    if report.config.ab_dtype == "bf16":
        assert report.opcodes["FFMA"] == 0, report.summary()  # no promotion
        return
    # The only shared-memory loads are the promotion stage's SFA and SFB reads. SFA (and a per-row
    # SFB) read with a warp-uniform address ([URx]) would mean every thread reads the same rows:
    # the silent wrong-scale bug. The two 128x128 B scales of a stage are the same for every
    # thread: their loads alone are uniform, all into the stages' 8-byte slots (one offset per stage
    # base; with N and K compiled in, the unrolled K loop may address each stage's slot directly).
    lds = [line for line in report.sass.splitlines() if re.search(r"\bLDS(\.\w+)*\s", line)]
    per_thread = [line for line in lds if re.search(r"\[R\d+", line)]
    assert per_thread, "no SFA loads found"
    uniform = [line for line in lds if line not in per_thread]
    if report.config.b_scale_rows == 1:
        assert not uniform, "\n".join(uniform)
    else:
        offsets = [re.search(r"\[UR\d+\+(0x[0-9a-f]+)\]", line) for line in uniform]
        assert uniform and all(offsets), "\n".join(uniform)
        offsets = {int(m.group(1), 16) for m in offsets}
        slot = 4 * BLOCK_SFB_FLOATS
        assert max(offsets) - min(offsets) < slot * report.config.stages, "\n".join(uniform)
        assert all((o - min(offsets)) % slot == 0 for o in offsets), "\n".join(uniform)
    # Per K block each thread promotes its whole accumulator: BLOCK_N/2 FFMA per 64-row warpgroup
    # and wave.
    waves = max(1, report.config.block_m // 128)
    assert report.opcodes["FFMA"] >= waves * report.config.block_n // 2, report.summary()


def test_split_k_reduces_through_distributed_shared_memory(report):
    o = report.opcodes
    if report.config.split_k == 1:
        assert o["STAS"] == 0, report.summary()
        return
    # Each thread sends its partial values to every CTA of the cluster by st.async (16 bytes each),
    # and the cluster synchronises at the start (barrier init) and before exiting.
    assert o["STAS"] >= report.config.split_k, report.summary()
    assert "STAS.128" in report.sass
    assert o["UCGABAR_ARV"] >= 2 and o["UCGABAR_WAIT"] >= 2, report.summary()


def test_shared_memory_fits(report):
    assert report.shared_memory_bytes <= SMEM_CAPACITY, report.summary()


K_LOOP_BUDGETS = {  # instructions per K block and math warp at most (DeepGEMM's 256x128: 192)
    # (counts at 2026-11-29, with every lane's release arrive: +1 SYNCS per K block)
    GemmConfig(256, 128, 4): 197,  # two waves, promoted in place (195)
    GemmConfig(256, 128, 4, static_nk=(7168, 16384)): 186,  # the same with N and K compiled in (184.25)
    GemmConfig(128, 192, 4, static_nk=(24576, 1536)): 137,  # one wave in place, N and K compiled in (135.25)
    GemmConfig(128, 128, 5): 119,  # one wave, lagged promotion (117.25)
    # the same loop in the contiguous kind, where the barrier retry loops once landed inside it
    GemmConfig(128, 128, 5, kind=GemmKind.M_GROUPED_CONTIGUOUS): 119,
    GemmConfig(128, 160, 5): 132,  # one wave in place; its B-scale split column depends on the tile (131)
    # narrow decoding tiles, released by every lane's arrive alone (no ELECT in the loop)
    GemmConfig(64, 32, 18): 65,  # (64)
    GemmConfig(128, 48, 9): 75,  # (74)
}


@pytest.mark.parametrize("config", list(K_LOOP_BUDGETS), ids=_config_id)
def test_k_loop_mix(config):
    """The main K loop is found; per K block and math warp it holds one wave's 4 WGMMAs and one
    promotion (BLOCK_N / 2 FFMA) per 128-row wave, within its instruction budget, with no
    descriptor moved from vector registers (R2UR) and no global load (the B scales come from the
    stage)."""
    mix = compile_report(config).k_loop()
    per_k_block = mix.per_k_block()
    waves = max(1, config.block_m // 128)
    assert mix.k_blocks >= 1
    assert per_k_block["QGMMA"] == 4 * waves, per_k_block
    assert per_k_block["FFMA"] == waves * config.block_n // 2, per_k_block
    assert mix.instructions_per_k_block() <= K_LOOP_BUDGETS[config], per_k_block
    assert per_k_block.get("R2UR", 0) <= 0.5 and "LDG" not in per_k_block, per_k_block
