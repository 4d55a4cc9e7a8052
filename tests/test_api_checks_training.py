"""Argument checking of the training forms, on the CPU: ``fp8_gemm_nt`` with ``c`` (fp32
accumulation) and ``k_grouped_fp8_gemm_nt_contiguous``.

Proves, one table row per bad input: the right exception type, a message that starts with the
offending argument's name, the output left untouched, and no kernel compiled or launched. Valid
inputs get through every check and stop at the device check (they live on the CPU).
"""

import pytest
import torch

import cute_gemm
from cute_gemm import jit
from cute_gemm.jit import GemmConfig

FP8 = torch.float8_e4m3fn
M, N, K = 48, 264, 1040
KB = 9


@pytest.fixture(autouse=True)
def no_compile(monkeypatch):
    """Fail loudly if anything tries to compile or launch a kernel."""
    def boom(*args, **kwargs):
        raise AssertionError("a kernel was compiled/launched for invalid input")

    monkeypatch.setattr(jit, "get_fp8_gemm", boom)
    monkeypatch.setattr(jit, "compile_fp8_gemm", boom)


def f32(*shape):
    return torch.zeros(*shape, dtype=torch.float32)


def fp8(*shape):
    return torch.zeros(*shape).to(FP8)


def dense():
    """Valid dense training arguments: 1x128 scales on both sides, fp32 d, a separate c."""
    return dict(a=fp8(M, K), sfa=f32(KB, M).t(), b=fp8(N, K), sfb=f32(KB, N).t(),
                d=torch.full((M, N), 7.0), c=torch.ones(M, N), config=None)


def call_dense(t):
    return cute_gemm.fp8_gemm_nt((t["a"], t["sfa"]), (t["b"], t["sfb"]), t["d"], c=t["c"],
                                 config=t["config"])


def _set(**changes):
    def mutate(t):
        for name, make in changes.items():
            t[name] = make(t)
        return t
    return mutate


DENSE_CASES = [
    ("d-bf16-with-c", _set(d=lambda t: t["d"].bfloat16()), TypeError, "d"),
    ("c-bf16", _set(c=lambda t: t["c"].bfloat16()), TypeError, "c"),
    ("c-3d", _set(c=lambda t: t["c"].unsqueeze(0)), ValueError, "c"),
    ("c-shape", _set(c=lambda t: f32(M, N + 8)), ValueError, "c"),
    ("c-not-a-tensor", _set(c=lambda t: 1.0), TypeError, "c"),
    ("sfb-neither-shape", _set(sfb=lambda t: f32(N + 8, KB)), ValueError, "sfb"),
    ("sfb-per-row-kb+1", _set(sfb=lambda t: f32(N, KB + 1)), ValueError, "sfb"),
    ("config-variant", _set(config=lambda t: GemmConfig(128, 128, 4)), ValueError, "config"),
    ("config-static-nk", _set(config=lambda t: GemmConfig(128, 128, 4, b_scale_rows=1, out_dtype="fp32",
                                                          accumulate=True, static_nk=(N + 8, K))), ValueError, "config"),
]


@pytest.mark.parametrize("mutate,exc,name", [c[1:] for c in DENSE_CASES], ids=[c[0] for c in DENSE_CASES])
def test_bad_dense_training_argument(mutate, exc, name, monkeypatch):
    t = mutate(dense())
    if name == "config":  # the variant check comes after the device check
        monkeypatch.setattr(cute_gemm.api, "_check_same_device", lambda tensors: None)
    d_before = t["d"].clone()
    with pytest.raises(exc) as info:
        call_dense(t)
    assert str(info.value).startswith(name), str(info.value)
    assert torch.equal(t["d"], d_before)


def test_c_overlapping_d_is_rejected(monkeypatch):
    monkeypatch.setattr(cute_gemm.api, "_check_same_device", lambda tensors: None)
    t = dense()
    storage = f32((M + 1) * N)
    t["d"], t["c"] = storage[:M * N].view(M, N), storage[N:].view(M, N)
    with pytest.raises(ValueError, match="^c must be d itself or not overlap d"):
        call_dense(t)


@pytest.mark.parametrize("c_is_d", [False, True])
def test_valid_dense_training_stops_at_the_device_check(c_is_d):
    t = dense()
    if c_is_d:
        t["c"] = t["d"]
    with pytest.raises(ValueError, match="^a must be a CUDA tensor"):
        call_dense(t)


G, KS = 3, [256, 0, 512]
K_SUM = sum(KS)


def k_grouped():
    return dict(a=fp8(M, K_SUM), sfa=f32(K_SUM // 128, M).t(), b=fp8(N, K_SUM),
                sfb=f32(K_SUM // 128, N).t(), d=torch.full((G, M, N), 7.0), ks=list(KS), c=None)


def call_k_grouped(t):
    return cute_gemm.k_grouped_fp8_gemm_nt_contiguous(
        (t["a"], t["sfa"]), (t["b"], t["sfb"]), t["d"], t["ks"], t["c"])


K_GROUPED_CASES = [
    ("a-bf16", _set(a=lambda t: t["a"].bfloat16()), TypeError, "a"),
    ("d-bf16", _set(d=lambda t: t["d"].bfloat16()), TypeError, "d"),
    ("d-2d", _set(d=lambda t: t["d"][0]), ValueError, "d"),
    ("d-shape", _set(d=lambda t: f32(G, M + 1, N)), ValueError, "d"),
    ("b-k", _set(b=lambda t: fp8(N, K_SUM - 128)), ValueError, "b"),
    ("k-sum-not-128", _set(a=lambda t: fp8(M, K_SUM + 16), b=lambda t: fp8(N, K_SUM + 16)),
     ValueError, "K_sum"),
    ("sfa-shape", _set(sfa=lambda t: f32(M, K_SUM // 128 + 1)), ValueError, "sfa"),
    ("sfb-block-shape", _set(sfb=lambda t: f32(3, K_SUM // 128)), ValueError, "sfb"),
    ("ks-not-128", _set(ks=lambda t: [200, 56, 512]), ValueError, "ks"),
    ("ks-negative", _set(ks=lambda t: [896, -128, 0]), ValueError, "ks"),
    ("ks-sum", _set(ks=lambda t: [256, 128, 512]), ValueError, "ks"),
    ("ks-length", _set(ks=lambda t: [256, 512]), ValueError, "ks"),
    ("ks-floats", _set(ks=lambda t: [256.0, 0.0, 512.0]), TypeError, "ks"),
    ("ks-tensor-int64", _set(ks=lambda t: torch.tensor(KS)), TypeError, "ks"),
    ("ks-tensor-length", _set(ks=lambda t: torch.tensor(KS[:2], dtype=torch.int32)), ValueError, "ks"),
    ("c-shape", _set(c=lambda t: f32(G, M, N + 8)), ValueError, "c"),
    ("c-bf16", _set(c=lambda t: torch.zeros(G, M, N, dtype=torch.bfloat16)), TypeError, "c"),
]


@pytest.mark.parametrize("mutate,exc,name", [c[1:] for c in K_GROUPED_CASES],
                         ids=[c[0] for c in K_GROUPED_CASES])
def test_bad_k_grouped_argument(mutate, exc, name, monkeypatch):
    t = mutate(k_grouped())
    d_before = t["d"].clone()
    with pytest.raises(exc) as info:
        call_k_grouped(t)
    assert str(info.value).startswith(name), str(info.value)
    assert torch.equal(t["d"], d_before)


@pytest.mark.parametrize("variant", ["list", "tensor", "c-is-d"])
def test_valid_k_grouped_stops_at_the_device_check(variant):
    t = k_grouped()
    if variant == "tensor":
        t["ks"] = torch.tensor(KS, dtype=torch.int32)
    if variant == "c-is-d":
        t["c"] = t["d"]
    with pytest.raises(ValueError, match="^a must be a CUDA tensor"):
        call_k_grouped(t)


def bf16_dense():
    return dict(a=torch.zeros(M, K - 16, dtype=torch.bfloat16), b=torch.zeros(N, K - 16, dtype=torch.bfloat16),
                d=torch.full((M, N), 7.0, dtype=torch.bfloat16), c=None)


BF16_CASES = [
    ("a-fp8", _set(a=lambda t: t["a"].to(FP8)), TypeError, "a"),
    ("b-fp32", _set(b=lambda t: t["b"].float()), TypeError, "b"),
    ("d-fp16", _set(d=lambda t: t["d"].half()), TypeError, "d"),
    ("k-not-multiple-of-8", _set(a=lambda t: t["a"][:, :-4], b=lambda t: t["b"][:, :-4]), ValueError, "k"),
    ("b-k", _set(b=lambda t: torch.zeros(N, K, dtype=torch.bfloat16)), ValueError, "b"),
    ("c-with-bf16-d", _set(c=lambda t: torch.zeros(M, N)), TypeError, "d"),
    ("d-shape", _set(d=lambda t: torch.zeros(M, N + 8, dtype=torch.bfloat16)), ValueError, "d"),
]


@pytest.mark.parametrize("mutate,exc,name", [c[1:] for c in BF16_CASES], ids=[c[0] for c in BF16_CASES])
def test_bad_bf16_argument(mutate, exc, name):
    t = mutate(bf16_dense())
    d_before = t["d"].clone()
    with pytest.raises(exc) as info:
        cute_gemm.bf16_gemm_nt(t["a"], t["b"], t["d"], c=t["c"])
    assert str(info.value).startswith(name), str(info.value)
    assert torch.equal(t["d"], d_before)


def test_bf16_grouped_checks():
    a = torch.zeros(256, 512, dtype=torch.bfloat16)
    with pytest.raises(TypeError, match="^b must have dtype"):
        cute_gemm.m_grouped_bf16_gemm_nt_contiguous(a, torch.zeros(2, 64, 512).to(FP8), torch.zeros(256, 64, dtype=torch.bfloat16),
                                                    torch.zeros(256, dtype=torch.int32))
    with pytest.raises(ValueError, match="^expected_m"):
        cute_gemm.m_grouped_bf16_gemm_nt_masked(a.view(2, 128, 512), torch.zeros(2, 64, 512, dtype=torch.bfloat16),
                                                torch.zeros(2, 128, 64, dtype=torch.bfloat16),
                                                torch.zeros(2, dtype=torch.int32), 0)
    with pytest.raises(ValueError, match="^a must be a CUDA tensor"):
        cute_gemm.m_grouped_bf16_gemm_nt_masked(a.view(2, 128, 512), torch.zeros(2, 64, 512, dtype=torch.bfloat16),
                                                torch.zeros(2, 128, 64, dtype=torch.bfloat16),
                                                torch.zeros(2, dtype=torch.int32), 32)


def test_bf16_other_majors_checks():
    a_km = torch.zeros(K - 16, M, dtype=torch.bfloat16)  # tn: a is [k, m]
    b_kn = torch.zeros(K - 16, N, dtype=torch.bfloat16)  # nn: b is [k, n]
    d = torch.zeros(M, N, dtype=torch.bfloat16)
    with pytest.raises(ValueError, match=r"^b must be \[k, n\] with k=1024"):
        cute_gemm.bf16_gemm_nn(torch.zeros(M, K - 16, dtype=torch.bfloat16), b_kn[:-8], d)
    with pytest.raises(ValueError, match="^a must have unit stride"):  # an [m, k] given for tt
        cute_gemm.bf16_gemm_tt(torch.zeros(M, K - 16, dtype=torch.bfloat16).t(), torch.zeros(N, K - 16, dtype=torch.bfloat16), d)
    with pytest.raises(ValueError, match="^a must have unit stride.*multiples of 8"):  # m = 44 rows of a^T
        cute_gemm.bf16_gemm_tn(torch.zeros(K - 16, 44, dtype=torch.bfloat16), b_kn, torch.zeros(44, N, dtype=torch.bfloat16))
    with pytest.raises(ValueError, match="^a must be a CUDA tensor"):
        cute_gemm.bf16_gemm_tn(a_km, b_kn, d)


def test_config_variant_reads_the_config_fields():
    from cute_gemm.jit import Variant
    assert set(Variant._fields) <= set(GemmConfig._fields)
    config = GemmConfig(128, 128, 4, b_scale_rows=1, out_dtype="fp32", accumulate=True, static_nk=(256, 512))
    assert config.variant == Variant(1, "fp32", True)
    assert "static_nk" not in config.kernel_arguments() and config.kernel_arguments()["accumulate"]
