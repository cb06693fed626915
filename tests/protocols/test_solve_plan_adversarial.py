"""review4 (issue 16): solve_plan's bound analysis against a cheater's matrix.

protocols.apps.ml.malicious_linear.newton_schulz_solve clips A to |A_ij| <= a, then runs the
Newton-Schulz iterations unclipped up to solve_plan's first_clip and clips X_k and T_k = A X_k
from there on. A cheater can still choose any A inside the clip; an indefinite one (all
entries -a) makes the unclipped iterates grow doubly exponentially. This replays the solve's
exact fixed-point schedule in plaintext integers (the same products, truncations with random
rounding and clips, in the same order) for such matrices and checks that every value handed
to a truncation (and the final product with b) stays below LIM = 2^(l-2); the positive
control starts the clips one iteration later and must exceed LIM (so the plan is tight, and
the check has power)."""

import numpy as np
import pytest

from mpc.local import default_domain
from protocols.apps.ml import malicious_linear as mllin
from protocols.apps.ml.malicious import lim

F, FS, ITERS = 16, 20, 24


def _worst(A: np.ndarray, plan: mllin.SolvePlan, c: float, b: float, shift: int = 0) -> int:
    """The largest |value| truncated in newton_schulz_solve(bounds=...) for this A (already
    inside the clip), with the iterates' clips starting `shift` iterations late."""
    rng = np.random.default_rng(0)
    d = A.shape[0]

    def trunc(v, k):  # floor(v / 2^k) + u, u in {0, 1}: the probabilistic truncation
        return (v >> k) + (rng.random(v.shape) < 0.5).astype(np.int64).astype(object)

    xm, tm = int(plan.xm * (1 << FS)), int(plan.tau * (1 << FS))
    As = A.astype(object) * (1 << (FS - F))
    X = (np.eye(d, dtype=np.int64) * int(round((1 << FS) / c))).astype(object)
    eye2 = (np.eye(d, dtype=np.int64) * (2 << FS)).astype(object)
    worst = 0
    for it in range(ITERS):
        p = As.dot(X)
        worst = max(worst, max(abs(v) for v in p.flat))
        T = trunc(p, FS)
        if it >= plan.first_clip + shift:
            X, T = np.clip(X, -xm, xm), np.clip(T, -tm, tm)
        p = X.dot(eye2 - T)
        worst = max(worst, max(abs(v) for v in p.flat))
        X = trunc(p, FS)
    if plan.clip_last:
        X = np.clip(X, -xm, xm)
    bv = np.full(d, int(b * (1 << F)), dtype=object)  # the largest b inside its clip
    bh = trunc(bv, F)
    for p in (X.dot(bh), X.dot(bv - bh * (1 << F))):
        worst = max(worst, max(abs(v) for v in p.flat))
    return worst


@pytest.mark.parametrize("d", [3, 10])
def test_cheaters_matrix_keeps_every_truncation_in_range(d):
    D = default_domain("shamir")
    L = lim(D)
    a, b, c = 1.125, 2.0**16.5, 1.05 * d  # the closed form's defaults (test_solve_plan_bounds)
    plan = mllin.solve_plan(D, d, a=a, b=b, trace_bound=c, f=F, f_solve=FS, iters=ITERS)
    am = int(a * (1 << F))
    cheats = {"-a everywhere": np.full((d, d), -am, dtype=np.int64),
              "-a I": -am * np.eye(d, dtype=np.int64),
              "+a everywhere": np.full((d, d), am, dtype=np.int64),
              "random signs": am * np.where(np.random.default_rng(d).random((d, d)) < 0.5, -1, 1)}
    for name, A in cheats.items():
        assert _worst(A, plan, c, b) < L, name
    # positive control: the clips one iteration late let the indefinite matrix out of range
    assert _worst(cheats["-a everywhere"], plan, c, b, shift=1) > L
