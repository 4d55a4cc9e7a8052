"""The fast path of a warm ``fp8_gemm_nt`` call, on the CPU (issue #3: host overhead).

A warm call looks its launcher up by the layout of its arguments and then runs only the checks
that depend on the data pointers; everything else was checked once, when the layout's plan was
made. These tests prove that this skips nothing:

- a warm call neither makes a new plan nor enters the checked path, and launches with the very
  tensors it was given; a new layout (shape, strides, pair type, SM count, config) is planned anew;
- every bad input of ``test_api_checks.CASES`` raises, after a valid call has warmed the fast
  path, exactly the exception (type and message) it raises cold, with nothing launched and ``d``
  untouched; so do the non-pairs, an ``sfb`` on another device and ``d`` overlapping each input
  with the warm layout (only the pointers differ, so only the per-call checks can catch it);
- a misaligned ``sfa`` is still converted, ``k == 0`` still zeroes ``d`` on every call.

The tensors are on the CPU: the device check (run when a plan is made) is replaced by a check that
the devices agree, and the compiled kernel by a stub that records its arguments. No timing here:
``tools/host_overhead.py`` measures the stages.
"""

import sys
from pathlib import Path

import pytest
import torch

import cute_gemm
from cute_gemm import api, jit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_api_checks import CASES, KB, MISALIGNED, NB, K, M, N, valid  # noqa: E402

FP8 = torch.float8_e4m3fn


def same_device(tensors):
    """The device check with the CPU standing in for a CUDA device: only agreement is checked."""
    first_name, first = next(iter(tensors.items()))
    for name, t in tensors.items():
        if t.device != first.device:
            raise ValueError(f"{name} is on {t.device} but {first_name} is on {first.device}")


class Recorder:
    """Stands in for the compiled kernel, the plan maker and the checked path, counting calls."""

    def __init__(self, monkeypatch):
        self.launches, self.plans, self.checked = [], 0, 0
        plan_dense, checked = api._plan_dense, api._fp8_gemm_nt_checked

        def counting_plan(*args):
            self.plans += 1
            return plan_dense(*args)

        def counting_checked(*args):
            self.checked += 1
            return checked(*args)

        monkeypatch.setattr(api, "_plan_dense", counting_plan)
        monkeypatch.setattr(api, "_fp8_gemm_nt_checked", counting_checked)
        monkeypatch.setattr(jit, "get_fp8_gemm", lambda config: self.launch)
        monkeypatch.setattr(jit, "compile_fp8_gemm", None)

    def launch(self, *args):
        self.launches.append(args)


@pytest.fixture
def rec(monkeypatch):
    for name in ("_dense_plans", "_launchers", "_recent_launchers"):
        monkeypatch.setattr(api, name, {})
    monkeypatch.setattr(api, "_check_same_device", same_device)
    monkeypatch.setattr(cute_gemm.device, "_num_sms_override", None)
    return Recorder(monkeypatch)


def gemm(t, a_pair=None, b_pair=None, **kwargs):
    a = (t["a"], t["sfa"]) if a_pair is None else a_pair
    b = (t["b"], t["sfb"]) if b_pair is None else b_pair
    return cute_gemm.fp8_gemm_nt(a, b, t["d"], **kwargs)


def same_objects(launch, t):
    return all(x is t[n] for x, n in zip(launch[:5], ("a", "b", "d", "sfa", "sfb")))


def test_warm_calls_skip_planning_and_the_checked_path(rec):
    t = valid()
    assert gemm(t) is t["d"]
    assert (rec.plans, rec.checked, len(rec.launches)) == (1, 1, 1)
    for _ in range(5):
        assert gemm(t) is t["d"]
    assert (rec.plans, rec.checked, len(rec.launches)) == (1, 1, 6)
    assert all(same_objects(launch, t) and launch[5] == 132 for launch in rec.launches)
    # New tensors of the same layout: new pointers, same launcher.
    t2 = valid()
    gemm(t2)
    assert (rec.plans, rec.checked) == (1, 1) and same_objects(rec.launches[-1], t2)
    # Pairs as lists: another layout key (the pair type is part of it), then warm too.
    gemm(t2, [t2["a"], t2["sfa"]], [t2["b"], t2["sfb"]])
    gemm(t2, [t2["a"], t2["sfa"]], [t2["b"], t2["sfb"]])
    assert (rec.plans, rec.checked) == (2, 2)


def test_launch_key_matches_the_fast_path(rec):
    t = valid()
    gemm(t)
    key = api._launch_key((t["a"], t["sfa"]), (t["b"], t["sfb"]), t["d"], None)
    assert key in api._launchers and api._recent_launchers[key[0]] is api._launchers[key]
    assert api._launchers[key][0] == key[1]


@pytest.mark.parametrize(
    "change",
    ["m", "n", "k", "a-row-stride", "d-row-stride", "sfb-row-stride", "sfa-padding", "num_sms",
     "config"],
)
def test_a_new_layout_is_planned_anew(rec, change, monkeypatch):
    t = valid()
    gemm(t)
    kwargs, num_sms = {}, 132
    u = valid()
    if change == "m":
        u.update(a=u["a"][:32], sfa=torch.rand(KB, 32).t(), d=u["d"][:32])
    elif change == "n":
        u.update(b=u["b"][:256], sfb=u["sfb"][:2].contiguous(), d=u["d"][:, :256].contiguous())
    elif change == "k":
        u.update(a=u["a"][:, :1024].contiguous(), b=u["b"][:, :1024].contiguous(),
                 sfa=torch.rand(8, M).t(), sfb=torch.rand(NB, 8))
    elif change == "a-row-stride":
        u["a"] = torch.zeros(M, K + 16, dtype=FP8)[:, :K]
    elif change == "d-row-stride":
        u["d"] = torch.zeros(M, N + 8, dtype=torch.bfloat16)[:, :N]
    elif change == "sfb-row-stride":
        u["sfb"] = torch.rand(NB, KB + 3)[:, :KB]
    elif change == "sfa-padding":
        u["sfa"] = torch.rand(KB, M + 4)[:, :M].t()
    elif change == "num_sms":
        cute_gemm.set_num_sms(100)  # restored by the fixture
        num_sms = 100
    else:
        kwargs["config"] = jit.GemmConfig(64, 128, 4)
    gemm(u, **kwargs)
    assert (rec.plans, rec.checked) == (2, 2)
    assert same_objects(rec.launches[-1], u) and rec.launches[-1][5] == num_sms
    gemm(u, **kwargs)  # now warm
    assert (rec.plans, rec.checked) == (2, 2)
    gemm(t)  # the first layout is still warm
    assert (rec.plans, rec.checked) == (2, 2) and same_objects(rec.launches[-1], t)


def test_two_layouts_with_the_same_shapes_alternate_warm(rec):
    t, u = valid(), valid()
    u["d"] = torch.zeros(M, N + 8, dtype=torch.bfloat16)[:, :N]  # same shapes, d row-strided
    gemm(t), gemm(u)
    for _ in range(3):
        gemm(t), gemm(u)
    assert (rec.plans, rec.checked) == (2, 2)
    assert same_objects(rec.launches[-2], t) and same_objects(rec.launches[-1], u)


def error_of(call):
    try:
        call()
    except (TypeError, ValueError) as e:
        return type(e), str(e)
    raise AssertionError("no error")


@pytest.mark.parametrize("mutate", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_inputs_raise_the_same_error_warm_as_cold(rec, mutate, request):
    cold = error_of(lambda: gemm(mutate(valid())))
    assert not rec.launches
    gemm(valid())  # warms the fast path for the valid layout
    gemm(valid())
    assert rec.checked == 2  # the cold error and the first valid call; the second was fast
    t = mutate(valid())
    d_before = t["d"].clone() if isinstance(t["d"], torch.Tensor) else None
    assert error_of(lambda: gemm(t)) == cold
    assert len(rec.launches) == 2
    if d_before is not None and t["d"].dtype == d_before.dtype:
        assert torch.equal(t["d"], d_before)
    if request.node.callspec.id in MISALIGNED:
        assert "16-byte aligned address" in cold[1]


PAIRS = [
    ("a-triple", lambda t: ((t["a"], t["sfa"], t["sfa"]), (t["b"], t["sfb"]))),
    ("a-single", lambda t: ((t["a"],), (t["b"], t["sfb"]))),
    ("a-dict", lambda t: ({t["a"]: 0, t["sfa"]: 1}, (t["b"], t["sfb"]))),
    ("a-generator", lambda t: ((x for x in (t["a"], t["sfa"])), (t["b"], t["sfb"]))),
    ("b-set-order", lambda t: ((t["a"], t["sfa"]), {t["b"], t["sfb"]})),
    ("b-tensor", lambda t: ((t["a"], t["sfa"]), t["b"])),
    ("b-none", lambda t: ((t["a"], t["sfa"]), None)),
]


@pytest.mark.parametrize("pairs", [p[1] for p in PAIRS], ids=[p[0] for p in PAIRS])
def test_non_pairs_raise_warm(rec, pairs):
    t = valid()
    gemm(t), gemm(t)
    a, b = pairs(t)
    with pytest.raises(TypeError, match="^[ab] must be a pair"):
        cute_gemm.fp8_gemm_nt(a, b, t["d"])
    assert len(rec.launches) == 2


@pytest.mark.parametrize("moved", ["a", "sfa", "b", "sfb", "d"])
def test_a_tensor_on_another_device_raises_warm(rec, moved):
    t = valid()
    gemm(t), gemm(t)
    t[moved] = t[moved].to("meta")
    with pytest.raises(ValueError, match="meta"):
        gemm(t)
    assert len(rec.launches) == 2


@pytest.mark.parametrize("d_first", [True, False],
                         ids=["input-starts-inside-d", "d-starts-inside-input"])
@pytest.mark.parametrize("victim", ["a", "b", "sfa", "sfb"])
def test_output_overlapping_an_input_with_the_warm_layout(rec, victim, d_first):
    t = valid()
    gemm(t), gemm(t)
    src = t[victim]
    d_bytes, v_bytes = M * N * 2, src.numel() * src.element_size()
    storage = torch.zeros(d_bytes + v_bytes + 4096, dtype=torch.uint8)
    d_at, v_at = (0, 1024) if d_first else (64, 0)
    t["d"] = storage[d_at : d_at + d_bytes].view(torch.bfloat16).view(M, N)
    raw = storage[v_at : v_at + v_bytes].view(src.dtype)
    t[victim] = raw.view(src.t().shape).t() if victim == "sfa" else raw.view(src.shape)
    assert t[victim].stride() == src.stride()
    key = api._launch_key((t["a"], t["sfa"]), (t["b"], t["sfb"]), t["d"], None)
    assert key in api._launchers  # the warm layout: the fast path sees only new pointers
    with pytest.raises(ValueError, match=f"^d must not overlap {victim} in memory$"):
        gemm(t)
    assert len(rec.launches) == 2


def test_misaligned_sfa_is_converted_on_every_call(rec):
    t = valid()
    gemm(t), gemm(t)
    storage = torch.rand(KB * M + 1)
    t["sfa"] = storage[1:].view(KB, M).t()  # TMA-aligned strides, base 4 bytes off
    assert t["sfa"].stride() == valid()["sfa"].stride() and t["sfa"].data_ptr() % 16
    for i in range(2):
        gemm(t)
        sfa = rec.launches[-1][3]
        assert sfa is not t["sfa"] and sfa.data_ptr() % 16 == 0 and torch.equal(sfa, t["sfa"])
    assert rec.plans == 1


def test_k_zero_zeroes_d_on_every_call(rec):
    a, b = torch.zeros(M, 0, dtype=FP8), torch.zeros(N, 0, dtype=FP8)
    d = torch.full((M, N), 7.0, dtype=torch.bfloat16)
    for _ in range(3):
        d.fill_(7.0)
        assert cute_gemm.fp8_gemm_nt((a, torch.zeros(M, 0)), (b, torch.zeros(NB, 0)), d) is d
        assert (d == 0).all()
    assert rec.plans == 1 and not rec.launches and not api._launchers


def test_the_caches_stay_bounded(rec, monkeypatch):
    monkeypatch.setattr(api, "_MAX_PLANS", 4)
    for m in range(16, 16 + 10 * 16, 16):
        t = valid()
        t.update(a=torch.zeros(m, K, dtype=FP8), sfa=torch.rand(KB, m).t(),
                 d=torch.zeros(m, N, dtype=torch.bfloat16))
        gemm(t), gemm(t)
        assert same_objects(rec.launches[-1], t)
        assert len(api._dense_plans) <= 4 and len(api._launchers) <= 4
        assert len(api._recent_launchers) <= 4


def bf16(*shape):
    return torch.zeros(*shape, dtype=torch.bfloat16)


# (tensor, a valid row-strided version, a bad one of the same shape, start of the error message).
# The warm layout is non-contiguous, so its strides are in the key: a bad stride must not hit it.
STRIDED = [
    ("a", lambda: torch.zeros(M, K + 16, dtype=FP8)[:, :K],
     lambda: torch.zeros(M, K + 8, dtype=FP8)[:, :K], "a must have unit stride"),
    ("a", lambda: torch.zeros(M, K + 16, dtype=FP8)[:, :K],
     lambda: torch.zeros(K, M, dtype=FP8).t(), "a must have unit stride"),
    ("b", lambda: torch.zeros(N, K + 128, dtype=FP8)[:, :K],
     lambda: torch.zeros(N, K + 8, dtype=FP8)[:, :K], "b must have unit stride"),
    ("d", lambda: bf16(M, N + 8)[:, :N], lambda: bf16(M, N + 4)[:, :N], "d must have unit stride"),
    ("d", lambda: bf16(M, N + 8)[:, :N], lambda: bf16(N, M).t(), "d must have unit stride"),
    ("sfb", lambda: torch.rand(NB, KB + 3)[:, :KB], lambda: torch.rand(KB, NB).t(),
     "sfb must have unit stride"),
]


@pytest.mark.parametrize("name,good,bad,message", STRIDED,
                         ids=[f"{s[0]}-{i}" for i, s in enumerate(STRIDED)])
def test_a_bad_stride_after_a_warm_strided_layout(rec, name, good, bad, message):
    t = valid()
    t[name] = good()
    gemm(t), gemm(t)
    assert (rec.checked, len(rec.launches)) == (1, 2)
    t[name] = bad()
    with pytest.raises(ValueError, match=f"^{message}"):
        gemm(t)
    assert len(rec.launches) == 2


def test_sfa_strides_are_keyed_exactly(rec):
    # With one K block, sfa [m, 1] is contiguous whatever its column stride, but only a column
    # stride that is a multiple of 4 and >= m is TMA-aligned: the fast path must see the stride.
    k = 128
    a, b, d = torch.zeros(M, k, dtype=FP8), torch.zeros(N, k, dtype=FP8), bf16(M, N)
    sfb = torch.rand(NB, 1)
    aligned = torch.rand(1, M).t()  # strides (1, M)
    packed = torch.rand(M, 1)  # strides (1, 1): contiguous too, not TMA-aligned
    assert aligned.is_contiguous() and packed.is_contiguous()
    assert aligned.stride() != packed.stride()
    cute_gemm.fp8_gemm_nt((a, aligned), (b, sfb), d)
    cute_gemm.fp8_gemm_nt((a, aligned), (b, sfb), d)
    assert rec.launches[-1][3] is aligned and rec.checked == 1
    cute_gemm.fp8_gemm_nt((a, packed), (b, sfb), d)
    converted = rec.launches[-1][3]
    assert converted is not packed and converted.stride(1) % 4 == 0
    assert torch.equal(converted, packed)


class LooksLikeATensor:
    """Not a tensor, though it answers every attribute the layout key reads like one."""

    def __init__(self, t):
        self._t = t

    def __getattr__(self, name):
        return getattr(self._t, name)


@pytest.mark.parametrize("name", ["a", "sfa", "b", "sfb", "d"])
def test_a_non_tensor_with_tensor_attributes_raises_warm(rec, name):
    t = valid()
    gemm(t), gemm(t)
    t[name] = LooksLikeATensor(t[name])
    with pytest.raises(TypeError, match=f"^{name} must be a torch.Tensor, got LooksLikeATensor"):
        gemm(t)
    assert len(rec.launches) == 2
