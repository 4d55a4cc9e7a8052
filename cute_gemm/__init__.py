"""cute-gemm: FP8 GEMMs with fine-grained scaling for NVIDIA Hopper, written in the CuTe Python DSL.

Public API::

    fp8_gemm_nt((a, sfa), (b, sfb), d)      # d[m, n] bf16 = (a * sfa) @ (b * sfb)^T
    fp8_gemm_nt((a, sfa), (b, sfb), d, c=d)  # training: d fp32 += ..., sfb 128x128 or 1x128
    k_grouped_fp8_gemm_nt_contiguous((a, sfa), (b, sfb), d, ks, c)    # MoE wgrad, experts along K
    bf16_gemm_nt / _nn / _tn / _tt(a, b, d, c=None), m_grouped_bf16_gemm_nt_contiguous / _masked
    m_grouped_fp8_gemm_nt_contiguous((a, sfa), (b, sfb), d, m_indices)     # MoE, experts along M
    m_grouped_fp8_gemm_nt_masked((a, sfa), (b, sfb), d, masked_m, expected_m)  # MoE decoding
    per_token_cast_to_fp8, per_block_cast_to_fp8, get_mn_major_tma_aligned_tensor, calc_diff
    get_num_sms, set_num_sms
"""

from cute_gemm.api import (
    fp8_gemm_nt,
    k_grouped_fp8_gemm_nt_contiguous,
    m_grouped_fp8_gemm_nt_contiguous,
    m_grouped_fp8_gemm_nt_masked,
)
from cute_gemm.api_bf16 import (
    bf16_gemm_nn,
    bf16_gemm_nt,
    bf16_gemm_tn,
    bf16_gemm_tt,
    m_grouped_bf16_gemm_nt_contiguous,
    m_grouped_bf16_gemm_nt_masked,
)
from cute_gemm.device import get_num_sms, set_num_sms
from cute_gemm.moe import get_m_alignment_for_contiguous_layout
from cute_gemm.quant import (
    calc_diff,
    get_mn_major_tma_aligned_tensor,
    per_block_cast_to_fp8,
    per_token_cast_to_fp8,
)

__all__ = [
    "fp8_gemm_nt",
    "k_grouped_fp8_gemm_nt_contiguous",
    "bf16_gemm_nt",
    "bf16_gemm_nn",
    "bf16_gemm_tn",
    "bf16_gemm_tt",
    "m_grouped_bf16_gemm_nt_contiguous",
    "m_grouped_bf16_gemm_nt_masked",
    "m_grouped_fp8_gemm_nt_contiguous",
    "m_grouped_fp8_gemm_nt_masked",
    "per_token_cast_to_fp8",
    "per_block_cast_to_fp8",
    "get_mn_major_tma_aligned_tensor",
    "calc_diff",
    "get_m_alignment_for_contiguous_layout",
    "get_num_sms",
    "set_num_sms",
]
