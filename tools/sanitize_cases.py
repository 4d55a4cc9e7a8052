"""A few small problems of every kernel, each checked against the reference (run under compute-sanitizer)."""
import torch

import cute_gemm
from cute_gemm import calc_diff
from cute_gemm.jit import GemmConfig
from cute_gemm.kernels.fp8_gemm_sm90 import max_stages
from cute_gemm.testing import (
    make_contiguous_problem, make_fp8_gemm_problem, make_k_grouped_problem, make_masked_problem,
)
from schedulers.raster import GemmKind

torch.backends.cuda.matmul.allow_tf32 = False
failures = 0


def check_dense(m: int, n: int, k: int, cfg: GemmConfig, label: str = "dense") -> None:
    """Run one dense problem with ``cfg`` and count it as failed unless it matches the reference."""
    global failures
    p = make_fp8_gemm_problem(m, n, k)
    cute_gemm.fp8_gemm_nt((p.a, p.sfa), (p.b, p.sfb), p.d, config=cfg)
    diff = calc_diff(p.d, p.dequantized_reference())
    failures += not diff < 1e-5
    print(f"{label} {m}x{n}x{k} {cfg.describe()}: calc_diff {diff:.2e}")


# (m, n, k, tile, cluster, stages): None = most stages (a ring of epilogue buffers for the wide
# tiles); fewer stages stage the whole tile's epilogue at once.
for m, n, k, tile, cluster, stages in [
    (1, 264, 1040, (64, 32), (1, 1), None), (300, 520, 400, (128, 112), (1, 1), None),
    (333, 264, 272, (128, 128), (2, 1), None), (129, 392, 256, (64, 160), (1, 2), None),
    (600, 400, 528, (256, 128), (1, 1), None), (600, 400, 528, (256, 128), (1, 1), 3),
    (520, 360, 400, (256, 112), (1, 1), 3), (333, 600, 400, (128, 128), (1, 1), 5),
    (520, 400, 400, (256, 96), (1, 1), 3), (520, 400, 528, (256, 96), (1, 1), 3),  # two-wave lag
]:
    check_dense(m, n, k, GemmConfig(*tile, stages or max_stages(*tile), *cluster))
# The last M tile moved up to end at row M (rows shared with the tile above written twice), and
# decoding A boxes of 8 to 56 rows under a 64-row WGMMA.
for m, n, k, tile, extra in [
    (129, 392, 400, (128, 64), dict(shift_last_m_tile=True)),
    (300, 400, 528, (256, 96), dict(shift_last_m_tile=True)),
    (5, 264, 1040, (64, 32), dict(a_box_rows=8)), (20, 392, 400, (64, 64), dict(a_box_rows=32)),
    (45, 392, 400, (64, 64), dict(a_box_rows=48)),  # a box that does not divide the stage
]:
    check_dense(m, n, k, GemmConfig(*tile, max_stages(*tile), **extra))
# Split-K (2 and 4 CTAs per tile summing partials through distributed shared memory), with tails,
# more tiles than clusters (8 SMs), and fewer K blocks than CTAs.
cute_gemm.device.set_num_sms(8)
for m, n, k, tile, split in [
    (100, 2000, 1040, (64, 64), 2), (130, 1160, 400, (128, 128), 4), (64, 600, 128, (64, 128), 4),
]:
    check_dense(m, n, k, GemmConfig(*tile, max_stages(*tile, split_k=split), split_k=split), "dense split-K")
cute_gemm.device.set_num_sms(None)
p = make_contiguous_problem([0, 100, 1, 128], 264, 400)
cfg = GemmConfig(64, 112, max_stages(64, 112), kind=GemmKind.M_GROUPED_CONTIGUOUS)
cute_gemm.m_grouped_fp8_gemm_nt_contiguous((p.a, p.sfa), (p.b, p.sfb), p.d, p.group_info, config=cfg)
diff = max(calc_diff(p.d[s:s + c], p.expert_reference(g)) for g, (s, c) in enumerate(p.rows) if c)
failures += not diff < 1e-5
print(f"contiguous: calc_diff {diff:.2e}")
p = make_contiguous_problem([0, 100, 1, 65, 128], 264, 400)  # the same layout as prefix sums
psum = cute_gemm.moe.make_contiguous_psum([c for _, c in p.rows], device="cuda")
cfg = GemmConfig(64, 112, max_stages(64, 112), kind=GemmKind.M_GROUPED_CONTIGUOUS_PSUM)
cute_gemm.m_grouped_fp8_gemm_nt_contiguous((p.a, p.sfa), (p.b, p.sfb), p.d, psum, config=cfg, use_psum_layout=True)
diff = max(calc_diff(p.d[s:s + c], p.expert_reference(g)) for g, (s, c) in enumerate(p.rows) if c)
failures += not (diff < 1e-5 and torch.isnan(p.d[p.group_info < 0]).all())
print(f"contiguous (psum): calc_diff {diff:.2e}")
p = make_masked_problem([0, 70, 129, 5], 130, 264, 400)
cfg = GemmConfig(128, 160, max_stages(128, 160), kind=GemmKind.M_GROUPED_MASKED)
cute_gemm.m_grouped_fp8_gemm_nt_masked((p.a, p.sfa), (p.b, p.sfb), p.d, p.group_info, 64, config=cfg)
diff = max(calc_diff(p.d[g, :c], p.expert_reference(g)) for g, c in enumerate(p.rows) if c)
failures += not diff < 1e-5
print(f"masked: calc_diff {diff:.2e}")
# Training forms: per-row B scales + fp32 d accumulated by TMA reduce-add, the k-grouped kernel
# (an empty expert, K tiles of several experts), and the BF16 GEMM (fp32 out, c in place).
train = dict(b_scale_rows=1, out_dtype="fp32", accumulate=True)
p = make_fp8_gemm_problem(300, 264, 400, b_scale_rows=1, out_dtype=torch.float32)
c = torch.randn(p.d.shape, device="cuda")
p.d.copy_(c)
cfg = GemmConfig(128, 48, max_stages(128, 48, 1, "fp32"), **train)
cute_gemm.fp8_gemm_nt((p.a, p.sfa), (p.b, p.sfb), p.d, c=p.d, config=cfg)
diff = calc_diff(p.d, p.dequantized_reference() + c)
failures += not diff < 1e-5
print(f"dense per-row B, d += ...: calc_diff {diff:.2e}")
p = make_k_grouped_problem([256, 0, 384], 130, 264)
cfg = GemmConfig(64, 112, max_stages(64, 112, 1, "fp32"), kind=GemmKind.K_GROUPED, **train)
p.d.zero_()
cute_gemm.k_grouped_fp8_gemm_nt_contiguous((p.a, p.sfa), (p.b, p.sfb), p.d, p.ks, c=p.d, config=cfg)
diff = max(calc_diff(p.d[g], p.expert_reference(g)) for g, k in enumerate(p.ks) if k)
failures += not (diff < 1e-5 and not p.d[1].any())
print(f"k-grouped: calc_diff {diff:.2e}")
x, y = torch.randn(300, 392, device="cuda").bfloat16(), torch.randn(264, 392, device="cuda").bfloat16()
d = torch.randn(300, 264, device="cuda")
c = d.clone()
cute_gemm.bf16_gemm_nt(x, y, d, c=d)
diff = calc_diff(d, x.float() @ y.float().t() + c)
failures += not diff < 1e-5
print(f"bf16, d += ...: calc_diff {diff:.2e}")
torch.cuda.synchronize()
print("FAILED" if failures else "all cases correct")
raise SystemExit(1 if failures else 0)
