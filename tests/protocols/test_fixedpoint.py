import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.arith.fixedpoint import FixedPoint
from protocols.arith.ring import Ring64
from protocols.errors import ConfigError, InputRangeError

FP = FixedPoint(Ring64())


@given(st.lists(st.floats(-1e9, 1e9, allow_nan=False), min_size=1, max_size=50))
def test_round_trip_within_half_resolution(xs):
    x = np.array(xs)
    err = np.abs(FP.decode(FP.encode(x)) - x)
    # rounding to the nearest multiple of 2^-f, plus float64 rounding of x * 2^f
    assert (err <= FP.resolution / 2 + np.abs(x) * 2.0**-52).all()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 2.0**47, -(2.0**47), 1e300])
def test_bad_values_raise(bad):
    with pytest.raises(InputRangeError):
        FP.encode(np.array([0.0, bad]))


def test_range_and_dtype():
    assert FP.max_abs == 2.0**47
    with pytest.raises(InputRangeError):
        FP.encode(np.array(["a"]))
    with pytest.raises(ConfigError):
        FixedPoint(Ring64(), f=63)
    small = FixedPoint(Ring64(), max_abs=10.0)
    with pytest.raises(InputRangeError):
        small.encode(10.0)


def test_negative_values_are_twos_complement():
    v = FP.encode(np.array([-1.5]))
    assert v.view(np.int64)[0] == -3 * 2**15
