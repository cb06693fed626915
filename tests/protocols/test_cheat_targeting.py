"""The cheat double aimed at a named step (issue 16 follow-up): malicious_helpers.Cheat with
`phase` (tests/mpc/cheating_node.py's "phase:NAME:PREFIX[:K]") fires on the K-th distinct
matching tag sent while that phase runs, wherever it falls in the message sequence, so a
test's target survives a change in the number of products before it (the old "mking#9"
counted messages from the job's start)."""

from __future__ import annotations

import numpy as np
import pytest
from malicious_helpers import Cheat, install_phases, parse_target, run

from mpc.bench.e2e import logistic_data
from protocols.apps.ml import train
from protocols.errors import CheatingDetectedError

pytestmark = pytest.mark.timeout(300)

LX, LY = logistic_data(60, 3)


def _job(s):
    async def go():
        idx = np.arange(60)[s.pid::3]
        m = await train(s, "logistic", LX[idx], LY[idx], partition="horizontal", epochs=1, batch_size=20)
        return await m.reveal(s)
    return go()


@pytest.mark.parametrize("target,phase", [("phase:sgd:mking#", "sgd"), ("phase:sgd:mking#:3", "sgd"),
                                          ("phase:finish:mking#", "finish")])
def test_cheat_fires_inside_the_named_phase_and_is_caught(monkeypatch, target, phase):
    install_phases(monkeypatch)
    prefix, ph, k = parse_target(target)
    cheats = []

    def wrap(ch):
        from mpc.local import default_domain

        c = Cheat(ch, default_domain("shamir"), prefix, phase=ph, skip=k)
        cheats.append(c)
        return c

    res, errs, _ = run(_job, wrap=wrap)
    (c,) = cheats
    assert c.done_tag is not None and phase in c.hit_phases, (c.done_tag, c.hit_phases)
    assert c.done_tag == c.seen[k]
    assert res == [None] * 3
    for pid in (0, 1):
        assert isinstance(errs[pid], CheatingDetectedError) and errs[pid].check == "mac", (pid, errs[pid])


def test_a_phase_that_never_runs_fires_nothing(monkeypatch):
    """Aimed at the vertical preparation in a horizontal job: no message is touched and the
    model is released."""
    install_phases(monkeypatch)
    cheats = []

    def wrap(ch):
        from mpc.local import default_domain

        c = Cheat(ch, default_domain("shamir"), "mking", phase="prepare_vertical")
        cheats.append(c)
        return c

    res, errs, _ = run(_job, wrap=wrap)
    assert errs == [None] * 3, errs
    assert cheats[0].done_tag is None


def test_bad_target_rejected():
    with pytest.raises(ValueError):
        parse_target("phase:nosuch:mking")
