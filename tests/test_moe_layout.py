"""The contiguous MoE layout helpers of cute_gemm.moe, on the CPU.

``make_contiguous_m_indices`` (alignment, -1 padding, offsets, empty experts, input errors),
``pack_contiguous`` / ``unpack_contiguous`` (values, zero padding, shapes, views), the alignment
constant, and ``check_contiguous_m_indices``. Expectations are built row by row in plain Python.
"""

import random

import pytest
import torch

from cute_gemm.moe import (
    check_contiguous_m_indices,
    get_m_alignment_for_contiguous_layout,
    make_contiguous_m_indices,
    make_contiguous_psum,
    pack_contiguous,
    unpack_contiguous,
)
from layouts.tiles import GROUPED_BLOCK_M_CHOICES


def cdiv(a, b):
    return -(-a // b)


def expected_layout(sizes, alignment):
    """Row by row: expert g's rows, then -1 up to the next multiple of alignment."""
    rows, offsets = [], [0]
    for g, size in enumerate(sizes):
        rows += [g] * size
        while len(rows) % alignment:
            rows.append(-1)
        offsets.append(len(rows))
    return rows, offsets


def test_alignment_constant():
    assert get_m_alignment_for_contiguous_layout() == 128
    assert all(128 % bm == 0 for bm in GROUPED_BLOCK_M_CHOICES)  # every M block lies in one expert


SIZE_CASES = [
    [],
    [0],
    [0, 0, 0],
    [1],
    [128],
    [129],
    [3, 130],
    [0, 5, 0, 128, 256, 1, 0],
    [127, 128, 129, 255, 256, 257],
]


@pytest.mark.parametrize("sizes", SIZE_CASES, ids=str)
@pytest.mark.parametrize("alignment", [None, 128, 64, 1, 7])
def test_make_contiguous_m_indices(sizes, alignment):
    m_indices, row_offsets = make_contiguous_m_indices(sizes, alignment)
    align = 128 if alignment is None else alignment
    rows, offsets = expected_layout(sizes, align)
    assert m_indices.dtype == torch.int32 and m_indices.shape == (len(rows),)
    assert row_offsets.dtype == torch.int64 and row_offsets.shape == (len(sizes) + 1,)
    assert m_indices.tolist() == rows
    assert row_offsets.tolist() == offsets
    assert all(o % align == 0 for o in offsets)
    assert m_indices.device.type == row_offsets.device.type == "cpu"
    for g, size in enumerate(sizes):
        start, end = offsets[g], offsets[g + 1]
        assert end - start == cdiv(size, align) * align  # zero-size groups take no rows
        assert m_indices[start:start + size].eq(g).all()
        assert m_indices[start + size:end].eq(-1).all()


def test_make_contiguous_m_indices_random():
    rng = random.Random(11)
    for _ in range(60):
        sizes = [rng.choice((0, rng.randint(1, 400))) for _ in range(rng.randint(1, 40))]
        alignment = rng.choice((None, 64, 128))
        m_indices, row_offsets = make_contiguous_m_indices(sizes, alignment)
        rows, offsets = expected_layout(sizes, alignment or 128)
        assert m_indices.tolist() == rows and row_offsets.tolist() == offsets
        check_contiguous_m_indices(m_indices, num_groups=len(sizes), alignment=alignment)


def test_make_contiguous_m_indices_input_kinds():
    expected = make_contiguous_m_indices([3, 0, 200])
    as_tensors = (torch.tensor([3, 0, 200]), torch.tensor([3, 0, 200], dtype=torch.int32))
    for sizes in ((3, 0, 200), *as_tensors):
        got = make_contiguous_m_indices(sizes)
        assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
    m_indices, row_offsets = make_contiguous_m_indices([3], device="cpu")
    assert m_indices.device == row_offsets.device == torch.device("cpu")


@pytest.mark.parametrize(
    "sizes,match",
    [
        ([3, -1], r"group_sizes\[1\]"),
        ([1.5], r"group_sizes\[0\]"),
        ([True], r"group_sizes\[0\]"),
        (["3"], r"group_sizes\[0\]"),
        ([None], r"group_sizes\[0\]"),
        ("123", "group_sizes"),
        (5, "group_sizes"),
        (torch.tensor([1.0, 2.0]), "group_sizes"),
        (torch.tensor([[1, 2]]), "group_sizes"),
        (torch.tensor([1, -2]), r"group_sizes\[1\]"),
    ],
)
def test_make_contiguous_m_indices_bad_sizes(sizes, match):
    with pytest.raises(ValueError, match=match):
        make_contiguous_m_indices(sizes)


@pytest.mark.parametrize("alignment", [0, -128, 1.5, True, "128"])
def test_make_contiguous_m_indices_bad_alignment(alignment):
    with pytest.raises(ValueError, match="alignment"):
        make_contiguous_m_indices([1, 2], alignment)


# ------------------------------------------------------------------------------------------------
# pack / unpack


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float8_e4m3fn])
@pytest.mark.parametrize("sizes", [[0], [5], [3, 0, 130, 128, 1], [0, 0, 0]], ids=str)
def test_pack_unpack_round_trip(sizes, dtype):
    k = 48
    gen = torch.Generator().manual_seed(len(sizes) * 7 + sum(sizes))
    # Values without zeros, so any zero in a valid row of `packed` would be a bug.
    xs = [(torch.rand(m, k, generator=gen) + 0.5).to(dtype) for m in sizes]
    packed, m_indices, row_offsets = pack_contiguous(xs)
    rows, offsets = expected_layout(sizes, 128)
    assert packed.shape == (len(rows), k) and packed.dtype == dtype and packed.is_contiguous()
    assert m_indices.tolist() == rows and row_offsets.tolist() == offsets

    as_f32 = packed.float()
    valid = torch.tensor(rows) >= 0
    assert as_f32[~valid].eq(0).all()  # padding rows are zeros
    assert as_f32[valid].ne(0).all()
    for g, x in enumerate(xs):
        assert torch.equal(as_f32[offsets[g]:offsets[g] + sizes[g]], x.float())

    parts = unpack_contiguous(packed, row_offsets, sizes)
    assert len(parts) == len(xs)
    for part, x in zip(parts, xs):
        assert part.shape == x.shape and part.dtype == dtype
        assert torch.equal(part.float(), x.float())
        if part.numel():
            # A view of packed, not a copy.
            assert part.untyped_storage().data_ptr() == packed.untyped_storage().data_ptr()


def test_pack_alignment_and_wide_output_unpack():
    xs = [torch.randn(m, 8) for m in (1, 70, 0, 64)]
    packed, m_indices, row_offsets = pack_contiguous(xs, alignment=64)
    assert row_offsets.tolist() == [0, 64, 192, 192, 256]
    assert packed.shape == (256, 8)
    assert m_indices.tolist() == expected_layout([1, 70, 0, 64], 64)[0]
    # Unpacking works on any [M_sum, ...] tensor, e.g. the GEMM's [M_sum, N] output.
    d = torch.arange(256 * 3, dtype=torch.float32).view(256, 3)
    parts = unpack_contiguous(d, row_offsets.tolist(), [1, 70, 0, 64])
    assert [p.shape for p in parts] == [(1, 3), (70, 3), (0, 3), (64, 3)]
    assert torch.equal(parts[1], d[64:134])


def test_pack_errors():
    with pytest.raises(ValueError, match="at least one"):
        pack_contiguous([])
    with pytest.raises(ValueError, match="xs"):
        pack_contiguous(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"xs\[1\].*2-D"):
        pack_contiguous([torch.zeros(2, 3), torch.zeros(3)])
    with pytest.raises(ValueError, match=r"xs\[1\] has K=4"):
        pack_contiguous([torch.zeros(2, 3), torch.zeros(2, 4)])
    with pytest.raises(ValueError, match=r"xs\[1\] has dtype"):
        pack_contiguous([torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.bfloat16)])
    with pytest.raises(ValueError, match="alignment"):
        pack_contiguous([torch.zeros(2, 3)], alignment=0)


def test_unpack_errors():
    packed = torch.zeros(256, 4)
    with pytest.raises(ValueError, match="G \\+ 1"):
        unpack_contiguous(packed, [0, 128], [1, 1])
    with pytest.raises(ValueError, match="past packed"):
        unpack_contiguous(packed, [0, 128, 384], [1, 1])
    with pytest.raises(ValueError, match=r"group_sizes\[0\]=129"):
        unpack_contiguous(packed, [0, 128, 256], [129, 1])
    with pytest.raises(ValueError, match="decrease"):
        unpack_contiguous(packed, [0, 128, 0], [1, 0])
    with pytest.raises(ValueError, match=r"group_sizes\[1\]"):
        unpack_contiguous(packed, [0, 128, 256], [1, -1])


# ------------------------------------------------------------------------------------------------
# check_contiguous_m_indices


def _i32(rows):
    return torch.tensor(rows, dtype=torch.int32)


@pytest.mark.parametrize(
    "rows,alignment",
    [
        ([], 4),
        ([-1] * 8, 4),
        ([0, 0, -1, -1, 1, 1, 1, 1], 4),
        ([2, 2, 2, 2, 0, -1, -1, -1, 2, 2], 4),  # experts out of order, repeated; short last block
        ([1, -1], 4),
    ],
)
def test_check_contiguous_m_indices_accepts(rows, alignment):
    check_contiguous_m_indices(_i32(rows), num_groups=3, alignment=alignment)


@pytest.mark.parametrize(
    "rows,num_groups,match",
    [
        ([0, 1, -1, -1], None, r"m_indices\[1\] = 1"),  # two experts in one block
        ([0, -1, 0, -1], None, r"m_indices\[2\] = 0"),  # expert rows after padding
        ([-1, 0, 0, 0], None, r"m_indices\[1\] = 0"),  # block starts with padding
        ([0, 0, 0, 0, -1, 1], None, r"m_indices\[5\] = 1"),  # in a short last block
        ([0, -2, -1, -1], None, r"m_indices\[1\] = -2"),
        ([0, 0, 0, 0, 3, 3, 3, 3], 3, r"m_indices\[4\] = 3"),  # not an expert of G = 3
    ],
)
def test_check_contiguous_m_indices_rejects(rows, num_groups, match):
    with pytest.raises(ValueError, match=match):
        check_contiguous_m_indices(_i32(rows), num_groups=num_groups, alignment=4)


def test_check_contiguous_m_indices_bad_arguments():
    with pytest.raises(ValueError, match="int32"):
        check_contiguous_m_indices(torch.zeros(4, dtype=torch.int64))
    with pytest.raises(ValueError, match="int32"):
        check_contiguous_m_indices(torch.zeros(2, 2, dtype=torch.int32))
    with pytest.raises(ValueError, match="torch.Tensor"):
        check_contiguous_m_indices([0, 0])
    with pytest.raises(ValueError, match="num_groups"):
        check_contiguous_m_indices(_i32([0]), num_groups=-1)
    with pytest.raises(ValueError, match="alignment"):
        check_contiguous_m_indices(_i32([0]), alignment=0)


@pytest.mark.parametrize("sizes", [[3, 130], [0, 128, 1, 0, 257], [0], [1000]])
def test_make_contiguous_psum_is_the_end_of_each_expert(sizes):
    psum = make_contiguous_psum(sizes)
    m_indices, offsets = make_contiguous_m_indices(sizes)
    assert psum.dtype == torch.int32 and psum.tolist() == [int(offsets[g]) + s for g, s in enumerate(sizes)]
    # Each expert starts where the previous one ends, rounded up to 128 rows.
    prev = 0
    for g, end in enumerate(psum.tolist()):
        start = -(-prev // 128) * 128
        assert start == int(offsets[g]) and (m_indices[start:end] == g).all()
        prev = end
    with pytest.raises(ValueError, match="group_sizes"):
        make_contiguous_psum([1, -2])
