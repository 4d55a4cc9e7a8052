"""Which GPU we run on and how many SMs the persistent kernels may use."""

from __future__ import annotations

import functools

_num_sms_override: int | None = None  # api.fp8_gemm_nt reads it directly (in its fast key)


@functools.lru_cache(maxsize=None)
def _device_sm_count(device_index: int) -> int:
    import torch

    return torch.cuda.get_device_properties(device_index).multi_processor_count


def num_sms_override() -> int | None:
    """The value given to :func:`set_num_sms`, or None."""
    return _num_sms_override


@functools.lru_cache(maxsize=None)
def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def get_num_sms(device_index: int | None = None) -> int:
    """SMs the kernels launch on: :func:`set_num_sms`'s value, else the device's count (132 on H200).

    Without a GPU (compile-only use) this is 132, the H100/H200 SXM count.
    """
    if _num_sms_override is not None:
        return _num_sms_override
    if not _cuda_available():
        return 132
    if device_index is None:
        import torch

        device_index = torch.cuda.current_device()
    return _device_sm_count(device_index)


def set_num_sms(num_sms: int | None) -> None:
    """Limit the persistent grid to ``num_sms`` CTAs (e.g. to leave SMs to a communication kernel).

    ``None`` restores the device's own count. The SM count is a run-time kernel argument: changing
    it never recompiles.
    """
    global _num_sms_override
    if num_sms is not None and (not isinstance(num_sms, int) or num_sms < 1):
        raise ValueError(f"num_sms must be a positive int or None, got {num_sms!r}")
    _num_sms_override = num_sms
