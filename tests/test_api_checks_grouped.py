"""Argument checks of the grouped GEMMs on the CPU: each bad input raises before any compile.

One table row per bad input for ``m_grouped_fp8_gemm_nt_contiguous`` and
``m_grouped_fp8_gemm_nt_masked``: the exception type (``TypeError`` for a wrong dtype or a
non-pair, ``ValueError`` otherwise), a message that starts with the argument's name, and no kernel
compiled (``jit.get_fp8_gemm`` / ``jit.compile_fp8_gemm`` fail the test if called). Valid CPU
inputs stop at the CUDA device check; with that check patched out, empty problems return ``d``
untouched and an output overlapping an input is refused.
"""

import pytest
import torch

import cute_gemm
from cute_gemm import api, jit
from schedulers.raster import GemmKind

FP8 = torch.float8_e4m3fn
G, MS, MMAX, N, K = 3, 256, 128, 264, 1040
KB, NB = -(-K // 128), -(-N // 128)


def fp8(*shape):
    return torch.randn(*shape).to(FP8)


def f32(*shape):
    return torch.rand(*shape)


@pytest.fixture(autouse=True)
def no_compile(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("a kernel was compiled or launched for bad input")

    monkeypatch.setattr(jit, "get_fp8_gemm", boom)
    monkeypatch.setattr(jit, "compile_fp8_gemm", boom)


def contiguous_args():
    return {"a": fp8(MS, K), "sfa": f32(MS, KB), "b": fp8(G, N, K), "sfb": f32(G, NB, KB),
            "d": torch.zeros(MS, N, dtype=torch.bfloat16),
            "info": torch.zeros(MS, dtype=torch.int32), "expected_m": None}


def masked_args():
    return {"a": fp8(G, MMAX, K), "sfa": f32(G, MMAX, KB), "b": fp8(G, N, K), "sfb": f32(G, NB, KB),
            "d": torch.zeros(G, MMAX, N, dtype=torch.bfloat16),
            "info": torch.zeros(G, dtype=torch.int32), "expected_m": 64}


def call(kind, t):
    if kind == "contiguous":
        return cute_gemm.m_grouped_fp8_gemm_nt_contiguous((t["a"], t["sfa"]), (t["b"], t["sfb"]), t["d"], t["info"])
    return cute_gemm.m_grouped_fp8_gemm_nt_masked(
        (t["a"], t["sfa"]), (t["b"], t["sfb"]), t["d"], t["info"], t["expected_m"]
    )


def make(kind):
    return contiguous_args() if kind == "contiguous" else masked_args()


def wide_rows(t, extra):
    """The same values with each row padded by ``extra`` elements (row stride breaks 16 bytes)."""
    wide = torch.zeros(*t.shape[:-1], t.shape[-1] + extra, dtype=torch.float32).to(t.dtype)
    wide[..., : t.shape[-1]] = t
    return wide[..., : t.shape[-1]]


def misaligned(t):
    flat = torch.zeros(t.numel() + 16, dtype=torch.float32).to(t.dtype)
    return flat[1 : 1 + t.numel()].view(t.shape)


# (case, argument, mutation, exception); the message must start with the argument's name
CASES = [
    ("a dtype", "a", lambda t: t["a"].to(torch.bfloat16), TypeError),
    ("sfa dtype", "sfa", lambda t: t["sfa"].double(), TypeError),
    ("b dtype", "b", lambda t: t["b"].to(torch.bfloat16), TypeError),
    ("sfb dtype", "sfb", lambda t: t["sfb"].double(), TypeError),
    ("d dtype", "d", lambda t: t["d"].float(), TypeError),
    ("info dtype", "info", lambda t: t["info"].long(), TypeError),
    ("a rank", "a", lambda t: t["a"][None], ValueError),
    ("sfa rank", "sfa", lambda t: t["sfa"][None], ValueError),
    ("b rank", "b", lambda t: t["b"][0], ValueError),
    ("sfb rank", "sfb", lambda t: t["sfb"][0], ValueError),
    ("d rank", "d", lambda t: t["d"][None], ValueError),
    ("info rank", "info", lambda t: t["info"][None], ValueError),
    ("b k", "b", lambda t: t["b"][..., :-16].contiguous(), ValueError),
    ("sfb groups", "sfb", lambda t: t["sfb"][:-1].contiguous(), ValueError),
    ("sfb rows", "sfb", lambda t: t["sfb"][:, :-1].contiguous(), ValueError),
    ("sfb cols", "sfb", lambda t: f32(G, NB, KB + 1), ValueError),
    ("sfa rows", "sfa", lambda t: t["sfa"][..., :-1, :].contiguous(), ValueError),
    ("sfa cols", "sfa", lambda t: t["sfa"][..., :-1].contiguous(), ValueError),
    ("d cols", "d", lambda t: t["d"][..., :-8].contiguous(), ValueError),
    ("info length", "info", lambda t: t["info"][:-1].contiguous(), ValueError),
    ("a transposed", "a", lambda t: t["a"].transpose(-1, -2).contiguous().transpose(-1, -2), ValueError),
    ("a row stride", "a", lambda t: wide_rows(t["a"], 8), ValueError),
    ("b row stride", "b", lambda t: wide_rows(t["b"], 8), ValueError),
    ("d row stride", "d", lambda t: wide_rows(t["d"], 4), ValueError),
    ("a misaligned", "a", lambda t: misaligned(t["a"]), ValueError),
    ("b misaligned", "b", lambda t: misaligned(t["b"]), ValueError),
    ("d misaligned", "d", lambda t: misaligned(t["d"]), ValueError),
]


@pytest.mark.parametrize("kind", ["contiguous", "masked"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_argument(kind, case):
    _, arg, mutate, error = case
    t = make(kind)
    t[arg] = mutate(t)
    name = {"info": "m_indices" if kind == "contiguous" else "masked_m"}.get(arg, arg)
    with pytest.raises(error) as excinfo:
        call(kind, t)
    assert str(excinfo.value).startswith(name), str(excinfo.value)


@pytest.mark.parametrize("kind", ["contiguous", "masked"])
@pytest.mark.parametrize("n,k,word", [(N + 4, K, "n"), (N, K + 8, "k")], ids=["n", "k"])
def test_n_and_k_rules(kind, n, k, word):
    t = make(kind)
    rows = t["a"].shape[:-1]
    t["a"], t["b"] = fp8(*rows, k), fp8(G, n, k)
    t["sfa"], t["sfb"] = f32(*rows, -(-k // 128)), f32(G, -(-n // 128), -(-k // 128))
    t["d"] = torch.zeros(*rows, n, dtype=torch.bfloat16)
    with pytest.raises(ValueError, match=f"^{word} must be a multiple"):
        call(kind, t)


@pytest.mark.parametrize("arg", ["a", "d", "sfa", "info"])
def test_masked_group_count_mismatch(arg):
    t = masked_args()
    t[arg] = t[arg][:-1].contiguous()
    with pytest.raises(ValueError):
        call("masked", t)


@pytest.mark.parametrize("expected_m", [0, -1, 1.5, True, None])
def test_masked_expected_m(expected_m):
    t = masked_args()
    t["expected_m"] = expected_m
    with pytest.raises(ValueError, match="^expected_m"):
        call("masked", t)


def test_not_pairs():
    t = contiguous_args()
    with pytest.raises(TypeError, match="^a must be a pair"):
        cute_gemm.m_grouped_fp8_gemm_nt_contiguous(t["a"], (t["b"], t["sfb"]), t["d"], t["info"])
    with pytest.raises(TypeError, match="^b must be a pair"):
        cute_gemm.m_grouped_fp8_gemm_nt_masked((t["a"], t["sfa"]), t["b"], t["d"], t["info"], 8)


@pytest.mark.parametrize("kind", ["contiguous", "masked"])
def test_valid_cpu_inputs_stop_at_the_device_check(kind):
    with pytest.raises(ValueError, match="CUDA"):
        call(kind, make(kind))


@pytest.fixture
def no_device_check(monkeypatch):
    monkeypatch.setattr(api, "_check_same_device", lambda tensors: None)


@pytest.mark.parametrize("kind", ["contiguous", "masked"])
def test_wrong_kind_of_config(kind, no_device_check):
    t = make(kind)
    with pytest.raises(ValueError, match="^config must have kind"):
        if kind == "contiguous":
            cute_gemm.m_grouped_fp8_gemm_nt_contiguous(
                (t["a"], t["sfa"]), (t["b"], t["sfb"]), t["d"], t["info"], config=jit.GemmConfig(128, 128, 6)
            )
        else:
            cute_gemm.m_grouped_fp8_gemm_nt_masked(
                (t["a"], t["sfa"]), (t["b"], t["sfb"]), t["d"], t["info"], 64, config=jit.GemmConfig(128, 128, 6)
            )


@pytest.mark.parametrize("kind", ["contiguous", "masked"])
@pytest.mark.parametrize("victim", ["a", "b", "sfa", "sfb"])
def test_output_overlapping_an_input(kind, victim, no_device_check):
    t = make(kind)
    nbytes = t["d"].numel() * 2
    storage = torch.zeros(nbytes + t[victim].numel() * t[victim].element_size() + 64, dtype=torch.uint8)
    t["d"] = storage[:nbytes].view(torch.bfloat16).view(t["d"].shape)
    src = t[victim].contiguous()
    start = 32  # inside d
    t[victim] = storage[start:start + src.numel() * src.element_size()].view(src.dtype).view(src.shape)
    with pytest.raises(ValueError, match=f"^d must not overlap {victim}"):
        call(kind, t)


@pytest.mark.parametrize("empty", ["groups", "rows", "n"])
@pytest.mark.parametrize("kind", ["contiguous", "masked"])
def test_empty_problems_touch_nothing(kind, empty, no_device_check):
    groups, rows, n = (0 if empty == "groups" else G), (0 if empty == "rows" else 128), (0 if empty == "n" else N)
    if kind == "contiguous":
        a, sfa = fp8(rows, K), f32(rows, KB)
        d = torch.full((rows, n), 3.0, dtype=torch.bfloat16)
        info = torch.zeros(rows, dtype=torch.int32)
        out = cute_gemm.m_grouped_fp8_gemm_nt_contiguous(
            (a, sfa), (fp8(groups, n, K), f32(groups, -(-n // 128), KB)), d, info
        )
    else:
        a, sfa = fp8(groups, rows, K), f32(groups, rows, KB)
        d = torch.full((groups, rows, n), 3.0, dtype=torch.bfloat16)
        info = torch.zeros(groups, dtype=torch.int32)
        out = cute_gemm.m_grouped_fp8_gemm_nt_masked(
            (a, sfa), (fp8(groups, n, K), f32(groups, -(-n // 128), KB)), d, info, 16
        )
    assert out is d and (d == 3.0).all()


def psum_call(t, **kwargs):
    return cute_gemm.m_grouped_fp8_gemm_nt_contiguous(
        (t["a"], t["sfa"]), (t["b"], t["sfb"]), t["d"], t["info"], use_psum_layout=True, **kwargs)


@pytest.mark.parametrize("info,error,match", [
    (torch.zeros(MS, dtype=torch.int32), ValueError, "^m_indices"),  # the per-row form, not [G]
    (torch.zeros(G + 1, dtype=torch.int32), ValueError, "^m_indices"),
    (torch.zeros(G, dtype=torch.int64), TypeError, "^m_indices"),
])
def test_psum_layout_checks(info, error, match):
    t = contiguous_args()
    t["info"] = info
    with pytest.raises(error, match=match):
        psum_call(t)


def test_psum_layout_flag_must_be_a_bool():
    t = contiguous_args()
    t["info"] = torch.zeros(G, dtype=torch.int32)
    with pytest.raises(TypeError, match="^use_psum_layout must be a bool"):
        cute_gemm.m_grouped_fp8_gemm_nt_contiguous(
            (t["a"], t["sfa"]), (t["b"], t["sfb"]), t["d"], t["info"], use_psum_layout=1)


def test_psum_layout_valid_cpu_inputs_stop_at_the_device_check():
    t = contiguous_args()
    t["info"] = torch.zeros(G, dtype=torch.int32)
    with pytest.raises(ValueError, match="CUDA"):
        psum_call(t)


def test_psum_layout_wrong_kind_of_config(no_device_check):
    t = contiguous_args()
    t["info"] = torch.zeros(G, dtype=torch.int32)
    with pytest.raises(ValueError, match="^config must have kind=M_GROUPED_CONTIGUOUS_PSUM"):
        psum_call(t, config=jit.GemmConfig(128, 128, 5, kind=GemmKind.M_GROUPED_CONTIGUOUS))


@pytest.mark.parametrize("kind", list(GemmKind))
def test_block_m_per_kind(kind):
    """256-row tiles: dense and masked only (a contiguous M block must lie in one 128-row-aligned
    expert; k-grouped is not measured there). The error names the kind and the allowed values."""
    from cute_gemm.kernels.fp8_gemm_sm90 import Fp8GemmSm90, max_stages

    variant = dict(b_scale_rows=1, out_dtype="fp32") if kind == GemmKind.K_GROUPED else {}
    stages = max_stages(256, 128, **variant)
    if kind in (GemmKind.NORMAL, GemmKind.M_GROUPED_MASKED):
        assert Fp8GemmSm90(256, 128, 4, kind=kind).block_m == 256
    elif kind == GemmKind.K_GROUPED:  # per-row B scales already rule out 256 rows
        with pytest.raises(ValueError, match=r"^per-row B scales need block_m <= 128"):
            Fp8GemmSm90(256, 128, stages, kind=kind, **variant)
    else:
        with pytest.raises(ValueError, match=rf"^block_m must be one of \(64, 128\) for {kind.name}, got 256"):
            Fp8GemmSm90(256, 128, stages, kind=kind, **variant)
