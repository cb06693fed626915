"""A cheating bank's out-of-range input into the malicious trainers (T28, issue 16): X or y,
horizontal or vertical, SGD or closed form. The cheater adds 2^104 to one encoded value of
its own and skips its own range check; every honest party must name it (security.
cheating_detected, check input.range) with nothing released. Without the range check the
value enters the training unchecked (the run completes or fails elsewhere)."""

from __future__ import annotations

import numpy as np
import pytest
from malicious_helpers import assert_range_cheater_named, run, skip_own_range_check

from mpc.bench.e2e import logistic_data
from protocols.apps.ml import malicious as mlmal
from protocols.apps.ml import malicious_linear as mllin
from protocols.apps.ml import train

pytestmark = pytest.mark.timeout(300)

BIG = 1 << 104
LX, LY = logistic_data(60, 3)
RX = LX @ [1.5, -0.5, 2.0] + 0.3


def _poison(monkeypatch, module, name, shape):
    """At party 2, the encoder `module.name` adds 2^104 to the first element of arrays of
    `shape` (its own data)."""
    real = getattr(module, name)

    def enc(s, *a, **kw):
        out = real(s, *a, **kw)
        if s.pid == 2 and out.shape == shape:
            D = s.domain
            out = out.copy()
            out.reshape(-1)[0:1] = D.add(out.reshape(-1)[0:1], D.from_int(np.array([BIG], dtype=object)))
        return out

    monkeypatch.setattr(module, name, enc)


def _horizontal(model, **kw):
    async def job(s):
        idx = np.arange(60)[s.pid::3]
        y = LY[idx] if model == "logistic" else RX[idx]
        m = await train(s, model, LX[idx], y, partition="horizontal", **kw)
        return await m.reveal(s)
    return job


def _vertical(model, y_owner, **kw):
    async def job(s):
        y = (LY if model == "logistic" else RX) if s.pid == y_owner else None
        m = await train(s, model, LX[:, s.pid : s.pid + 1], y, partition="vertical", **kw)
        return await m.reveal(s)
    return job


SGD = {"epochs": 1, "batch_size": 20}
CASES = {
    # (job, module, encoder, shape of the poisoned array)
    "horizontal-X-sgd": (_horizontal("logistic", **SGD), mlmal, "encode", (20, 3)),
    "horizontal-y-sgd": (_horizontal("logistic", **SGD), mlmal, "_encode_y", (20,)),
    "horizontal-y-sgd-unstandardized": (_horizontal("logistic", standardize=False, **SGD), mlmal, "_encode_y", (20,)),
    "horizontal-moments-closed-form": (_horizontal("linear"), mllin, "encode", (4 + 16,)),
    "vertical-X-sgd": (_vertical("logistic", 0, **SGD), mlmal, "encode", (60, 1)),
    "vertical-y-sgd": (_vertical("logistic", 2, **SGD), mlmal, "_encode_y", (60,)),
    "vertical-X-closed-form": (_vertical("ridge", 0, alpha=1.0), mlmal, "encode", (60, 1)),
    "vertical-y-closed-form": (_vertical("ridge", 2, alpha=1.0), mlmal, "_encode_y", (60,)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_trainer_names_an_out_of_range_input(monkeypatch, case):
    job, module, name, shape = CASES[case]
    _poison(monkeypatch, module, name, shape)
    skip_own_range_check(monkeypatch)
    res, errs, _ = run(job)
    assert res == [None] * 3, res  # nothing released
    assert_range_cheater_named(errs)


def test_trainer_without_the_cheat_releases(monkeypatch):
    """Positive control for the harness: the same run without the poisoned value (the
    cheater's hook installed) trains and releases the model at every party."""
    skip_own_range_check(monkeypatch)
    res, errs, _ = run(_vertical("ridge", 2, alpha=1.0))
    assert errs == [None] * 3, errs
    assert all(r is not None for r in res)
