import numpy as np
import pytest

from protocols.prg import CryptoRNG, derive_key


def test_seeded_is_reproducible_and_contexts_differ():
    a = CryptoRNG.from_seed(7, "party", 0).uint64(100)
    b = CryptoRNG.from_seed(7, "party", 0).uint64(100)
    c = CryptoRNG.from_seed(7, "party", 1).uint64(100)
    assert (a == b).all() and not (a == c).all()
    assert derive_key(1, "x") != derive_key(1, "y")


def test_unseeded_streams_differ():
    assert not (CryptoRNG().uint64(8) == CryptoRNG().uint64(8)).all()


@pytest.mark.parametrize("bound", [2, 3, 257, 2**61 - 1, 2**63 + 5])
def test_below_is_in_range(bound):
    v = CryptoRNG.from_seed(1).below(bound, 50_000)
    assert v.dtype == np.uint64 and int(v.max()) < bound
    if bound <= 257:
        counts = np.bincount(v.astype(np.int64), minlength=bound)
        assert counts.min() > 0


def test_below_rejects_bad_bounds():
    with pytest.raises(ValueError):
        CryptoRNG().below(1, 3)


def test_bits_are_bits():
    b = CryptoRNG.from_seed(2).bits(10_000)
    assert set(np.unique(b)) == {0, 1}
