"""Argument checking of cute_gemm.fp8_gemm_nt, on the CPU.

``fp8_gemm_nt`` checks dtypes, ranks, shapes, the N/K divisibility rules, strides and alignment
before it looks at the device, so every one of those rules can be exercised with CPU tensors.
Proves, one table row per bad input: the right exception type (``TypeError`` for a wrong dtype, a
non-tensor or a non-pair; ``ValueError`` otherwise), a message that starts with the offending
argument's name, ``d`` left untouched, and no kernel compiled or launched
(``cute_gemm.jit.get_fp8_gemm`` is monkeypatched to fail the test if it is called). Valid inputs,
including the strided layouts the docstring allows, get through every check and stop only at the
device check (they are on the CPU). The last tests pin two fixed bugs: empty ``[m, 0]`` tensors
rejected by the stride rule, and overlap with a row-strided input going undetected.
"""

import pytest
import torch

import cute_gemm
from cute_gemm import api, jit

M, N, K = 48, 264, 1040  # K is not a multiple of 128: 9 scale blocks, the last one partial
KB, NB = 9, 3
FP8 = torch.float8_e4m3fn


def fp8(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(FP8)


def valid():
    """A valid (a, sfa, b, sfb, d) set on the CPU (every base pointer is 64-byte aligned)."""
    return dict(
        a=fp8(M, K, seed=1),
        sfa=torch.rand(KB, M).t(),  # M-major, as get_mn_major_tma_aligned_tensor returns it
        b=fp8(N, K, seed=2),
        sfb=torch.rand(NB, KB),
        d=torch.full((M, N), 7.0, dtype=torch.bfloat16),
    )


def call(t, a_pair=None, b_pair=None):
    a = (t["a"], t["sfa"]) if a_pair is None else a_pair
    b = (t["b"], t["sfb"]) if b_pair is None else b_pair
    return cute_gemm.fp8_gemm_nt(a, b, t["d"])


@pytest.fixture(autouse=True)
def no_compile(monkeypatch):
    """Fail loudly if anything tries to compile or launch a kernel."""
    calls = []

    def boom(*args, **kwargs):
        calls.append(args)
        raise AssertionError("a kernel was compiled/launched for invalid input")

    monkeypatch.setattr(jit, "get_fp8_gemm", boom)
    monkeypatch.setattr(jit, "compile_fp8_gemm", boom)
    yield calls
    assert not calls


def misaligned(base, shape):
    """``shape`` elements of ``base`` starting one element in: 1 or 2 bytes off 16-byte alignment,
    contiguous, so only the alignment rule is broken."""
    numel = shape[0] * shape[1]
    return base.reshape(-1)[1 : 1 + numel].view(shape)


def wide_rows(base_fn, rows, cols, extra):
    """A [rows, cols] view into a [rows, cols + extra] buffer: row stride cols + extra."""
    return base_fn(rows, cols + extra)[:, :cols]


def _set(**changes):
    def mutate(t):
        for name, make in changes.items():
            t[name] = make(t)
        return t

    return mutate


def bf16(*shape):
    return torch.zeros(*shape, dtype=torch.bfloat16)


def f32(*shape):
    return torch.zeros(*shape, dtype=torch.float32)


# (id, mutation of the valid set, expected exception, argument named first in the message)
CASES = [
    # wrong dtype
    ("a-bf16", _set(a=lambda t: t["a"].bfloat16()), TypeError, "a"),
    ("a-e5m2", _set(a=lambda t: t["a"].to(torch.float8_e5m2)), TypeError, "a"),
    ("a-uint8", _set(a=lambda t: t["a"].view(torch.uint8)), TypeError, "a"),
    ("b-bf16", _set(b=lambda t: t["b"].bfloat16()), TypeError, "b"),
    ("b-e5m2", _set(b=lambda t: t["b"].to(torch.float8_e5m2)), TypeError, "b"),
    ("d-fp64", _set(d=lambda t: t["d"].double()), TypeError, "d"),
    ("d-fp16", _set(d=lambda t: t["d"].half()), TypeError, "d"),
    ("sfa-bf16", _set(sfa=lambda t: t["sfa"].bfloat16()), TypeError, "sfa"),
    ("sfa-fp64", _set(sfa=lambda t: t["sfa"].double()), TypeError, "sfa"),
    ("sfb-fp16", _set(sfb=lambda t: t["sfb"].half()), TypeError, "sfb"),
    ("sfb-int32", _set(sfb=lambda t: t["sfb"].int()), TypeError, "sfb"),
    # not a tensor
    ("a-none", _set(a=lambda t: None), TypeError, "a"),
    ("b-list", _set(b=lambda t: t["b"].float().tolist()), TypeError, "b"),
    ("d-none", _set(d=lambda t: None), TypeError, "d"),
    ("sfa-float", _set(sfa=lambda t: 1.0), TypeError, "sfa"),
    ("sfb-numpy", _set(sfb=lambda t: t["sfb"].numpy()), TypeError, "sfb"),
    # wrong rank
    ("a-3d", _set(a=lambda t: t["a"].unsqueeze(0)), ValueError, "a"),
    ("a-1d", _set(a=lambda t: t["a"].reshape(-1)), ValueError, "a"),
    ("b-3d", _set(b=lambda t: t["b"].unsqueeze(0)), ValueError, "b"),
    ("d-1d", _set(d=lambda t: t["d"].reshape(-1)), ValueError, "d"),
    ("d-3d", _set(d=lambda t: t["d"].unsqueeze(0)), ValueError, "d"),
    ("sfa-1d", _set(sfa=lambda t: t["sfa"][:, 0]), ValueError, "sfa"),
    ("sfa-3d", _set(sfa=lambda t: t["sfa"].unsqueeze(0)), ValueError, "sfa"),
    ("sfb-1d", _set(sfb=lambda t: t["sfb"].reshape(-1)), ValueError, "sfb"),
    ("sfb-0d", _set(sfb=lambda t: torch.tensor(1.0)), ValueError, "sfb"),
    # shapes
    ("b-k-short", _set(b=lambda t: fp8(N, K - 16)), ValueError, "b"),
    ("b-k-long", _set(b=lambda t: fp8(N, K + 16)), ValueError, "b"),
    ("d-m+1", _set(d=lambda t: bf16(M + 1, N)), ValueError, "d"),
    ("d-m-1", _set(d=lambda t: bf16(M - 1, N)), ValueError, "d"),
    ("d-n+8", _set(d=lambda t: bf16(M, N + 8)), ValueError, "d"),
    ("d-n-8", _set(d=lambda t: bf16(M, N - 8)), ValueError, "d"),
    ("d-transposed-shape", _set(d=lambda t: bf16(N, M)), ValueError, "d"),
    (
        "n-not-multiple-of-8",
        _set(b=lambda t: fp8(N - 4, K), d=lambda t: bf16(M, N - 4), sfb=lambda t: f32(NB, KB)),
        ValueError,
        "n",
    ),
    (
        "k-not-multiple-of-16",
        _set(a=lambda t: fp8(M, K - 8), b=lambda t: fp8(N, K - 8)),
        ValueError,
        "k",
    ),
    ("sfa-m+1", _set(sfa=lambda t: f32(M + 1, KB)), ValueError, "sfa"),
    ("sfa-m-1", _set(sfa=lambda t: f32(M - 1, KB)), ValueError, "sfa"),
    ("sfa-kb+1", _set(sfa=lambda t: f32(M, KB + 1)), ValueError, "sfa"),
    ("sfa-kb-1", _set(sfa=lambda t: f32(M, KB - 1)), ValueError, "sfa"),
    ("sfa-transposed", _set(sfa=lambda t: t["sfa"].t()), ValueError, "sfa"),
    ("sfb-nb+1", _set(sfb=lambda t: f32(NB + 1, KB)), ValueError, "sfb"),
    ("sfb-nb-1", _set(sfb=lambda t: f32(NB - 1, KB)), ValueError, "sfb"),
    ("sfb-kb+1", _set(sfb=lambda t: f32(NB, KB + 1)), ValueError, "sfb"),
    ("sfb-kb-1", _set(sfb=lambda t: f32(NB, KB - 1)), ValueError, "sfb"),
    # non-unit inner stride (transposed views with the right shape)
    ("a-transposed-view", _set(a=lambda t: fp8(K, M).t()), ValueError, "a"),
    ("b-transposed-view", _set(b=lambda t: fp8(K, N).t()), ValueError, "b"),
    ("d-transposed-view", _set(d=lambda t: bf16(N, M).t()), ValueError, "d"),
    ("a-every-other-column", _set(a=lambda t: fp8(M, 2 * K)[:, ::2]), ValueError, "a"),
    ("sfb-transposed-view", _set(sfb=lambda t: f32(KB, NB).t()), ValueError, "sfb"),
    # row stride not a multiple of 16 bytes
    ("a-row-stride-k+8", _set(a=lambda t: wide_rows(fp8, M, K, 8)), ValueError, "a"),
    ("a-row-stride-k+1", _set(a=lambda t: wide_rows(fp8, M, K, 1)), ValueError, "a"),
    ("b-row-stride-k+8", _set(b=lambda t: wide_rows(fp8, N, K, 8)), ValueError, "b"),
    ("d-row-stride-n+4", _set(d=lambda t: wide_rows(bf16, M, N, 4)), ValueError, "d"),
    ("d-row-stride-n+1", _set(d=lambda t: wide_rows(bf16, M, N, 1)), ValueError, "d"),
    # misaligned base pointer (strides fine)
    ("a-misaligned", _set(a=lambda t: misaligned(fp8(M * K + 16), (M, K))), ValueError, "a"),
    ("b-misaligned", _set(b=lambda t: misaligned(fp8(N * K + 16), (N, K))), ValueError, "b"),
    ("d-misaligned", _set(d=lambda t: misaligned(bf16(M * N + 8), (M, N))), ValueError, "d"),
    (
        "a-misaligned-16-aligned-stride",
        _set(a=lambda t: wide_rows(fp8, M, K + 16, 0)[:, 8 : 8 + K]),
        ValueError,
        "a",
    ),
]

MISALIGNED = {"a-misaligned", "b-misaligned", "d-misaligned", "a-misaligned-16-aligned-stride"}


@pytest.mark.parametrize("mutate,exc,name", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_argument(mutate, exc, name, request):
    t = mutate(valid())
    d_before = t["d"].clone() if isinstance(t["d"], torch.Tensor) else None
    with pytest.raises(exc) as info:
        call(t)
    assert type(info.value) is exc
    message = str(info.value)
    assert message.split()[0] == name, message
    if request.node.callspec.id in MISALIGNED:
        assert "16-byte aligned address" in message  # the alignment rule, not a stride rule
    if d_before is not None and t["d"].dtype == d_before.dtype:
        assert torch.equal(t["d"], d_before)


def test_misaligned_cases_really_are_misaligned():
    for case_id, mutate, _, name in CASES:
        if case_id in MISALIGNED:
            t = mutate(valid())
            assert t[name].data_ptr() % 16 != 0
            row_multiple = 16 // t[name].element_size()  # 16 bytes
            assert t[name].stride(1) == 1 and t[name].stride(0) % row_multiple == 0


@pytest.mark.parametrize(
    "a_pair,b_pair,name",
    [
        (lambda t: (t["a"], t["sfa"], t["sfa"]), None, "a"),
        (lambda t: (t["a"],), None, "a"),
        (lambda t: t["a"], None, "a"),  # the tensor alone, no scales
        (lambda t: {"a": t["a"], "sfa": t["sfa"]}, None, "a"),
        (None, lambda t: [t["b"]], "b"),
        (None, lambda t: t["b"], "b"),
        (None, lambda t: (t["b"], t["sfb"], None), "b"),
        (None, lambda t: None, "b"),
    ],
    ids=["a-triple", "a-single", "a-tensor", "a-dict", "b-list-of-one", "b-tensor", "b-triple",
         "b-none"],
)
def test_not_a_pair(a_pair, b_pair, name):
    t = valid()
    a = (t["a"], t["sfa"]) if a_pair is None else a_pair(t)
    b = (t["b"], t["sfb"]) if b_pair is None else b_pair(t)
    with pytest.raises(TypeError) as info:
        cute_gemm.fp8_gemm_nt(a, b, t["d"])
    assert str(info.value).startswith(f"{name} must be a pair")


# Valid inputs pass every dtype/shape/stride/alignment rule and are stopped only by the device
# check, because they live on the CPU.
VALID_CASES = [
    ("contiguous", _set()),
    ("pairs-as-lists", _set()),
    ("a-row-stride-k+16", _set(a=lambda t: wide_rows(fp8, M, K, 16))),
    ("b-row-stride-k+128", _set(b=lambda t: wide_rows(fp8, N, K, 128))),
    ("d-row-stride-n+8", _set(d=lambda t: wide_rows(bf16, M, N, 8))),
    ("sfa-row-major", _set(sfa=lambda t: t["sfa"].contiguous())),  # converted later, one copy
    ("sfb-strided-rows", _set(sfb=lambda t: f32(NB, KB + 3)[:, :KB])),
    ("d-fp32", _set(d=lambda t: t["d"].float())),
    ("sfb-per-row", _set(sfb=lambda t: f32(KB, N).t())),  # 1x128 B scales, N-major
    ("sfb-per-row-k-major", _set(sfb=lambda t: f32(N, KB))),  # converted later, one copy
]


@pytest.mark.parametrize("mutate", [c[1] for c in VALID_CASES], ids=[c[0] for c in VALID_CASES])
def test_valid_cpu_inputs_stop_at_the_device_check(mutate, request):
    t = mutate(valid())
    d_before = t["d"].clone()
    with pytest.raises(ValueError, match="CUDA") as info:
        if request.node.callspec.id == "pairs-as-lists":
            call(t, [t["a"], t["sfa"]], [t["b"], t["sfb"]])
        else:
            call(t)
    assert str(info.value).startswith("a must be a CUDA tensor")
    assert torch.equal(t["d"], d_before)


class _OnDevice:
    """Stands in for a tensor on ``device`` (the device check reads nothing else)."""

    def __init__(self, device: str):
        self.device = torch.device(device)


@pytest.mark.parametrize("moved", ["a", "sfa", "b", "sfb", "d"])
def test_device_check_names_the_tensor_on_another_gpu(moved):
    # Found on two H200s: with `a` moved, the message named `b` first. The tensor that is not on
    # the device most of them are on is named, whichever it is.
    tensors = {name: _OnDevice("cuda:1" if name == moved else "cuda:0") for name in ("a", "sfa", "b", "sfb", "d")}
    others = ", ".join(name for name in tensors if name != moved)
    with pytest.raises(ValueError, match=f"^{moved} is on cuda:1 but {others} are on cuda:0$"):
        api._check_same_device(tensors)


def test_device_check_names_a_cpu_tensor_first():
    tensors = {"a": _OnDevice("cuda:0"), "sfa": _OnDevice("cpu"), "b": _OnDevice("cuda:1")}
    with pytest.raises(ValueError, match="^sfa must be a CUDA tensor, got device cpu$"):
        api._check_same_device(tensors)


def test_single_row_any_row_stride():
    # With one row, the row stride never matters (TMA never steps over it).
    a = wide_rows(fp8, 1, K, 8)
    d = wide_rows(bf16, 1, N, 3)
    with pytest.raises(ValueError, match="CUDA"):
        cute_gemm.fp8_gemm_nt((a, f32(1, KB)), (fp8(N, K), f32(NB, KB)), d)


def test_shape_rules_come_before_the_device_check():
    # A CPU call with a bad shape reports the shape, not the device.
    t = valid()
    t["sfb"] = f32(NB, KB + 1)
    with pytest.raises(ValueError, match="^sfb must have shape"):
        call(t)


# M = 0 (and N = 0, K = 0) return early only *after* the device and aliasing checks, so with CPU
# tensors they stop at the device check; that much is tested first. The early returns themselves
# are then tested with the device check alone bypassed (api._check_same_device made a no-op): what
# follows it in fp8_gemm_nt (alias check, early returns) is plain Python and runs on the CPU.


def test_m_zero_on_cpu_hits_the_device_check():
    a, d = fp8(0, K), bf16(0, N)
    with pytest.raises(ValueError, match="CUDA"):
        cute_gemm.fp8_gemm_nt((a, f32(0, KB)), (fp8(N, K), f32(NB, KB)), d)


@pytest.fixture
def no_device_check(monkeypatch):
    monkeypatch.setattr(api, "_check_same_device", lambda tensors: None)


def test_m_zero_returns_d_untouched(no_device_check):
    d = bf16(0, N)
    out = cute_gemm.fp8_gemm_nt((fp8(0, K), f32(0, KB)), (fp8(N, K), f32(NB, KB)), d)
    assert out is d and out.shape == (0, N)


def empty_rows(make, rows, cols, row_stride):
    """An empty-width ``[rows, 0]`` tensor with an explicit row stride. torch gives a contiguous
    ``[rows, 0]`` tensor the strides (1, 1), which the row-stride rule rejects (see below)."""
    return make(rows * row_stride + 16).reshape(-1)[: rows * row_stride].as_strided(
        (rows, cols), (row_stride, 1)
    )


def test_n_zero_returns_d_untouched(no_device_check):
    d = empty_rows(bf16, M, 0, 8)
    out = cute_gemm.fp8_gemm_nt((fp8(M, K), f32(M, KB)), (fp8(0, K), f32(0, KB)), d)
    assert out is d and out.shape == (M, 0)


def test_k_zero_zeroes_d(no_device_check):
    d = torch.full((M, N), 7.0, dtype=torch.bfloat16)
    a, b = empty_rows(fp8, M, 0, 16), empty_rows(fp8, N, 0, 16)
    out = cute_gemm.fp8_gemm_nt((a, f32(M, 0)), (b, f32(NB, 0)), d)
    assert out is d and (d == 0).all()


# Regression: torch.empty(m, 0) has strides (1, 1); the stride rule must not reject empty tensors,
# or the n == 0 / k == 0 early returns are unreachable with ordinary tensors.
def test_n_zero_with_contiguous_d(no_device_check):
    d = torch.empty(M, 0, dtype=torch.bfloat16)
    assert cute_gemm.fp8_gemm_nt((fp8(M, K), f32(M, KB)), (fp8(0, K), f32(0, KB)), d) is d


def test_k_zero_with_contiguous_a_and_b(no_device_check):
    d = torch.full((M, N), 7.0, dtype=torch.bfloat16)
    out = cute_gemm.fp8_gemm_nt((fp8(M, 0), f32(M, 0)), (fp8(N, 0), f32(NB, 0)), d)
    assert out is d and (d == 0).all()


@pytest.mark.parametrize("victim", ["a", "b", "sfa", "sfb"])
def test_output_overlapping_an_input_is_rejected(no_device_check, victim):
    t = valid()
    # d's bytes cover the start of the victim's bytes (same storage, d reinterpreted as bf16).
    storage = torch.zeros(1024 + N * K + 4096, dtype=torch.uint8)
    d = storage[: M * N * 2].view(torch.bfloat16).view(M, N)
    if victim in ("a", "b"):
        rows = M if victim == "a" else N
        t[victim] = storage[1024 : 1024 + rows * K].view(FP8).view(rows, K)
    elif victim == "sfa":
        t[victim] = storage[1024 : 1024 + 4 * KB * M].view(torch.float32).view(KB, M).t()
    else:
        t[victim] = storage[1024 : 1024 + 4 * NB * KB].view(torch.float32).view(NB, KB)
    t["d"] = d
    with pytest.raises(ValueError, match=f"^d must not overlap {victim} in memory"):
        call(t)


class Launched(Exception):
    pass


# Regression: the overlap check must use a view's real extent ((rows - 1) * row_stride + cols),
# not numel * itemsize, or an output inside the last row of a row-strided input goes undetected.
def test_output_overlapping_last_row_of_strided_input(no_device_check, monkeypatch):
    def launched(*args, **kwargs):
        raise Launched

    monkeypatch.setattr(jit, "get_fp8_gemm", launched)
    t = valid()
    row = 2 * K  # a's rows are 2K bytes apart; it uses the first K bytes of each
    storage = torch.zeros((M - 1) * row + M * N * 2 + 64, dtype=torch.uint8)
    t["a"] = storage[: M * row].view(M, row)[:, :K].view(FP8)
    start = (M - 1) * row  # d begins inside a's last row
    t["d"] = storage[start : start + M * N * 2].view(torch.bfloat16).view(M, N)
    assert t["d"].data_ptr() < t["a"][-1].data_ptr() + K  # they really overlap
    with pytest.raises(ValueError, match="^d must not overlap a in memory"):
        call(t)
