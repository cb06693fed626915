"""A scalar is a 0-d array: every protocol takes and returns 0-d shares, without numpy's
scalar-overflow warnings (Z_2^64 wraps on purpose) and without turning () into (1,)."""

import warnings

import pytest

import mpc
from protocols import beaver, comparison, core, fixed, nonlinear
from protocols.arith.field import Mersenne127

OPS = {
    "mul": (lambda s, x: beaver.mul(s, x, x), 9.0 * 2**16),
    "fixed_mul": (lambda s, x: fixed.mul(s, x, x), 9.0),
    "ltz": (lambda s, x: comparison.ltz(s, x), 0.0),
    "eqz": (lambda s, x: comparison.eqz(s, x), 0.0),
    "sigmoid_piecewise": (lambda s, x: nonlinear.sigmoid_piecewise(s, x), 1.0),
    "reciprocal": (lambda s, x: nonlinear.reciprocal(s, x), 1 / 3),
}


@pytest.mark.parametrize("scheme", ["additive", "shamir"])
def test_zero_d_through_every_protocol(scheme):
    async def job(s):
        x = await core.input(s, s.domain.from_int(3 << 16) if s.pid == 0 else None, 0)
        outs = []
        for name, (fn, _) in OPS.items():
            z = await fn(s, x)
            assert z.shape == (), (name, z.shape)
            outs.append(z)
        opened = await core.open(s, *outs)
        return [float(s.domain.to_signed(v)) / 2**16 for v in opened]

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        dom = Mersenne127() if scheme == "shamir" else None
        got = mpc.run_local(3, job, scheme=scheme, domain=dom, seed=1).results[0]
    for (name, (_, want)), g in zip(OPS.items(), got, strict=True):
        assert abs(g - want) < 1e-3 * max(1, abs(want)), name  # mul: untruncated, 9 * 2^16
