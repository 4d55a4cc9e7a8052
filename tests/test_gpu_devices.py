"""Tensors on different devices are refused before any launch (GPU; two-GPU case needs 2 GPUs)."""

import pytest
import torch

import cute_gemm
from cute_gemm.testing import make_fp8_gemm_problem

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("moved", ["a", "sfa", "b", "sfb", "d"])
def test_cpu_tensor_among_cuda_tensors(moved):
    p = make_fp8_gemm_problem(64, 256, 256)
    args = {"a": p.a, "sfa": p.sfa, "b": p.b, "sfb": p.sfb, "d": p.d}
    args[moved] = args[moved].cpu()
    with pytest.raises(ValueError, match=f"^{moved} "):
        cute_gemm.fp8_gemm_nt((args["a"], args["sfa"]), (args["b"], args["sfb"]), args["d"])


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
@pytest.mark.parametrize("moved", ["a", "sfa", "b", "sfb", "d"])
def test_tensors_on_two_gpus(moved):
    p = make_fp8_gemm_problem(64, 256, 256)
    args = {"a": p.a, "sfa": p.sfa, "b": p.b, "sfb": p.sfb, "d": p.d}
    args[moved] = args[moved].to("cuda:1")
    with pytest.raises(ValueError, match=f"^{moved} "):
        cute_gemm.fp8_gemm_nt((args["a"], args["sfa"]), (args["b"], args["sfb"]), args["d"])
    assert torch.isnan(p.d).all() or moved == "d"


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
@pytest.mark.parametrize("current", [0, 1])
def test_runs_on_the_second_gpu(current):
    # All tensors on cuda:1, whichever device is current: the kernel must run where the data is.
    with torch.cuda.device(current):
        p = make_fp8_gemm_problem(300, 512, 1024, device="cuda:1")
        cute_gemm.fp8_gemm_nt((p.a, p.sfa), (p.b, p.sfb), p.d)
        torch.cuda.synchronize(1)
        assert cute_gemm.calc_diff(p.d, p.dequantized_reference()) < 1e-5
