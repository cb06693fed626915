"""Issue 16 (mlin): the analyst's `feature_scale` is no refusal oracle.

The analyst chooses feature_scale; a bank whose scaled value x / scale left the fixed-point
input range refused its input (semi-honest: InputRangeError at the bank, the job failed;
malicious: InputRangeRefusedError naming the bank at every party). Whether a job fails
then tells the analyst whether max |x / scale| >= the range's bound for a scale of its
choice: one bit per job, and a binary search over scales recovers one bank's extreme value,
outside any DP accounting. Now every bank saturates its scaled values to the range
(`data.scaled_input`): two datasets that differ in one value have the same outcome.
Unscaled data (feature_scale=None) keeps its refusal: a fixed predicate of the data the
analyst cannot tune. A feature_scale that is not finite and non-zero is refused before any
input (ConfigError, public)."""

from __future__ import annotations

import numpy as np
import pytest

from mpc.bench.e2e import logistic_data
from mpc.fit import fit_local
from protocols.errors import ConfigError

pytestmark = pytest.mark.timeout(600)

LX, LY = logistic_data(60, 3)
RY = LX @ [1.5, -0.5, 2.0] + 0.3


def _outcome(big: float | None, *, model: str, security: str, scale: list[float], **kw) -> str:
    """'ok' or the error's type: bank 1's row 4, column 0 set to `big` (None: unchanged)."""
    parts = []
    for i in range(3):
        X = LX[i::3].copy()
        if i == 1 and big is not None:
            X[4, 0] = big
        parts.append((X, (LY if model == "logistic" else RY)[i::3]))
    scheme = "shamir" if security == "malicious" else "additive"
    try:
        fit_local(model, parts, scheme=scheme, security=security, seed=1, feature_scale=scale, **kw)
    except Exception as e:  # noqa: BLE001 -- the outcome is what the analyst observes
        return type(e).__name__
    return "ok"


CASES = {
    # semi-honest Z_2^64, f = 16: |x / scale| < 2^47 to encode (x^2 < 2^47 in the moments)
    "semi-honest sgd": (dict(model="logistic", security="semi-honest", epochs=1, batch_size=20), 2.0**-20, 2.0**28),
    "semi-honest closed form": (dict(model="linear", security="semi-honest"), 2.0**-20, 2.0**28),
    # malicious: |x / scale| < 2^15 (range_bits 32), moments < 2^31 (moment_bits 48)
    "malicious sgd": (dict(model="logistic", security="malicious", epochs=1, batch_size=20), 2.0**-4, 2.0**11),
    "malicious closed form": (dict(model="linear", security="malicious", solver_iters=8), 2.0**-4, 2.0**15),
}


@pytest.mark.parametrize("case", list(CASES))
def test_one_value_does_not_change_the_outcome(case):
    """Two datasets differing in bank 1's one value (inside vs beyond the range once scaled
    by the analyst's feature_scale): the same outcome (on main: 'ok' vs a refusal)."""
    kw, sc, big = CASES[case]
    scale = [sc, 1.0, 1.0]
    assert _outcome(None, scale=scale, **kw) == "ok"
    assert _outcome(big, scale=scale, **kw) == "ok"


def test_scaled_input_saturates_finite_values_only():
    from protocols.apps.ml.data import scaled_input

    X = np.array([[1.0, -3.0], [np.inf, 2.0**40], [np.nan, -(2.0**40)]])
    got = scaled_input(X, [0.5, 2.0], 16.0)
    assert got[0].tolist() == [2.0, -1.5]
    assert got[1, 0] == np.inf and np.isnan(got[2, 0])  # no value: the bank's own error
    assert got[1, 1] == 16.0 and got[2, 1] == -16.0
    assert scaled_input(X[:1], None, 1.0).tolist() == X[:1].tolist()  # unscaled: untouched


@pytest.mark.parametrize("bad", [[0.0, 1.0, 1.0], [1.0, np.nan, 1.0], [np.inf, 1.0, 1.0], [-0.0, 1.0, 1.0]])
def test_bad_feature_scale_refused_before_any_input(bad):
    from protocols.apps.ml.data import scaled_input

    with pytest.raises(ConfigError, match="feature_scale"):
        scaled_input(LX, bad, 16.0)
