"""Bitmask layout, packing and application (numpy and torch agree)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from constrain import allocate_bitmask, apply_bitmask, bitmask_to_bool, bool_to_bitmask


@given(hnp.arrays(bool, st.tuples(st.integers(1, 3), st.integers(1, 200))))
def test_pack_unpack_round_trip(mask):
    packed = bool_to_bitmask(mask)
    assert packed.dtype == np.int32 and packed.shape == (mask.shape[0], (mask.shape[1] + 31) // 32)
    assert np.array_equal(bitmask_to_bool(packed, mask.shape[1]), mask)


def test_bit_layout_matches_llguidance_xgrammar():
    mask = np.zeros((1, 70), dtype=bool)
    mask[0, [0, 31, 32, 69]] = True
    packed = bool_to_bitmask(mask)
    assert packed[0, 0] == np.int32(np.uint32(1 | (1 << 31)).view(np.int32))
    assert packed[0, 1] == 1 and packed[0, 2] == 1 << 5


@given(hnp.arrays(bool, st.tuples(st.integers(1, 3), st.integers(1, 150))), st.integers(0, 40))
def test_apply_numpy_and_torch_agree(mask, extra_columns):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    batch, v = mask.shape
    logits = rng.normal(size=(batch, v + extra_columns)).astype(np.float32)
    bm = bool_to_bitmask(mask)
    expected = np.where(np.pad(mask, ((0, 0), (0, extra_columns))), logits, -np.inf)
    out_np = apply_bitmask(logits.copy(), bm, vocab_size=v)
    out_t = apply_bitmask(torch.from_numpy(logits.copy()), torch.from_numpy(bm), vocab_size=v)
    assert np.array_equal(out_np, expected)
    assert np.array_equal(out_t.numpy(), expected)


def test_apply_one_dimensional_logits():
    logits = np.zeros(40, dtype=np.float64)
    bm = allocate_bitmask(1, 40)
    bm[0, 1] = 1  # token 32
    apply_bitmask(logits, bm[0])
    assert np.isfinite(logits).nonzero()[0].tolist() == [32]


def test_bad_shapes_and_dtypes_name_expected_and_got():
    with pytest.raises(ValueError, match="bitmask must be int32"):
        apply_bitmask(np.zeros((1, 10), np.float32), np.zeros((1, 1), np.int64))
    with pytest.raises(ValueError, match="disagree"):
        apply_bitmask(np.zeros((2, 10), np.float32), np.zeros((1, 1), np.int32))
    with pytest.raises(TypeError, match="logits must be"):
        apply_bitmask([1.0, 2.0], np.zeros((1, 1), np.int32))
    with pytest.raises(ValueError, match="positive"):
        allocate_bitmask(0, 10)


@given(st.integers(1, 4), st.integers(1, 200), st.sampled_from([0.0, 0.03, 0.5, 0.97, 1.0]), st.integers(0, 2**32 - 1))
def test_word_kernel_equals_the_bitwise_definition(batch, v, density, seed):
    """All-ones, all-zeros and mixed words (the kernel's three cases), host torch (numba on a view
    of the same memory, strided too) and the device path (shift unpacking: half precision here)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    mask = rng.random((batch, v)) < density
    bm = bool_to_bitmask(mask)
    cut = int(rng.integers(0, v + 1))
    logits = rng.normal(size=(batch, 2, v + 5)).astype(np.float32)
    expected = np.where(np.pad(mask[:, :cut], ((0, 0), (0, v + 5 - cut))), logits[:, 1], -np.inf)
    assert np.array_equal(apply_bitmask(logits[:, 1].copy(), bm, vocab_size=cut), expected)
    strided = torch.from_numpy(logits.copy())[:, 1]  # a view with row stride 2 * (v + 5)
    assert apply_bitmask(strided, torch.from_numpy(bm), vocab_size=cut) is strided
    assert np.array_equal(strided.numpy(), expected)
    half = torch.from_numpy(logits[:, 1].copy()).to(torch.bfloat16)
    apply_bitmask(half, torch.from_numpy(bm), vocab_size=cut)
    assert np.array_equal(torch.isinf(half).numpy(), np.isinf(expected))
