"""The compiled kernels of malicious Shamir (protocols.malicious._jit) against the numpy
field code they replace."""

from __future__ import annotations

import numpy as np
import pytest

from protocols.arith.field import Mersenne127
from protocols.malicious import chida18
from protocols.prg import CryptoRNG

P = (1 << 127) - 1


@pytest.mark.parametrize("n", [1, 7, 4096, 100_003])
def test_check_sums_compiled_equals_products_and_sums(n):
    """check_sums (one compiled pass, 192-bit accumulation) equals F.sum(F.mul(...)) and the
    exact integer sums, with random elements and the largest ones (p - 1) mixed in."""
    F, Fnp = Mersenne127(), Mersenne127()
    Fnp.use_jit = False
    rng = CryptoRNG.from_seed(b"check-sums", n)
    a, z, rz = (F.random(rng, (n,)) for _ in range(3))
    top = F.from_int(np.full(min(n, 50), P - 1, dtype=object))
    a[: top.size], rz[: top.size] = top, top
    u, w = chida18.check_sums(F, a, z, rz)
    assert u.shape == w.shape == ()
    un, wn = chida18.check_sums(Fnp, a, z, rz)
    ai, zi, rzi = (F.to_int(v) for v in (a, z, rz))
    assert int(F.to_int(u)) == int(F.to_int(un)) == int((ai * rzi).sum()) % P
    assert int(F.to_int(w)) == int(F.to_int(wn)) == int((ai * zi).sum()) % P
    r = F.random(rng, ())
    T = chida18.check_value(F, a, z, rz, r)
    assert int(F.to_int(T)) == (int((ai * rzi).sum()) - int(F.to_int(r)) * int((ai * zi).sum())) % P
