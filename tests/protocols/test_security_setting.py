"""The security setting: Session.security, run_local(security=...), typed refusals."""

import numpy as np
import pytest

import mpc
from mpc.node.daemon import error_code
from protocols import beaver, core
from protocols.errors import CheatingDetectedError, ConfigError, MaliciousUnsupportedError


def test_default_is_semi_honest_and_unknown_values_are_refused():
    async def job(s):
        return s.security

    assert mpc.run_local(3, job).results == ["semi-honest"] * 3
    with pytest.raises(ConfigError, match="security must be one of"):
        mpc.run_local(3, job, security="paranoid")


def test_malicious_additive_is_refused_not_run_semi_honest():
    async def job(s):  # pragma: no cover (never runs)
        raise AssertionError("ran")

    with pytest.raises(MaliciousUnsupportedError, match="SPDZ2k"):  # SPDZ2k: dealer or ot only
        mpc.run_local(3, job, security="malicious", preprocessing="rss3")
    with pytest.raises(MaliciousUnsupportedError, match="2t"):
        mpc.run_local(4, job, scheme="shamir", security="malicious")


@pytest.mark.parametrize("what", ["input", "open", "reveal_to", "mul"])
def test_semi_honest_protocols_refuse_a_malicious_session(what):
    async def job(s):
        assert s.security == "malicious" and s.domain.modulus == (1 << 127) - 1
        x = core.Share(s.domain.zeros((2,)), s)
        if what == "input":
            await core.input(s, s.domain.zeros((2,)) if s.pid == 0 else None, 0)
        elif what == "open":
            await core.open(s, x)
        elif what == "reveal_to":
            await core.reveal_to(s, x, 0)
        else:
            await beaver.mul(s, x, x)

    with pytest.raises(MaliciousUnsupportedError) as e:
        mpc.run_local(3, job, scheme="shamir", security="malicious")
    assert all(isinstance(x, MaliciousUnsupportedError) for x in e.value.party_errors)
    assert error_code(e.value) == "security.unsupported"


def test_daemon_error_codes():
    from mpc.node import codes

    assert error_code(CheatingDetectedError("x", check="mac")) == "security.cheating_detected"
    assert error_code(MaliciousUnsupportedError("x")) == "security.unsupported"
    assert codes.SECURITY_CHEATING_DETECTED == CheatingDetectedError.code
    assert codes.SECURITY_UNSUPPORTED == MaliciousUnsupportedError.code


def test_semi_honest_unchanged():
    async def job(s):
        x = await core.input(s, s.domain.from_int(np.arange(3)) if s.pid == 0 else None, 0)
        (v,) = await core.open(s, await beaver.mul(s, x, x))
        return s.domain.to_int(v).tolist()  # Python ints on any field

    assert mpc.run_local(3, job, scheme="shamir", security="semi-honest").results[0] == [0, 1, 4]


@pytest.mark.parametrize("scheme", ["additive"])  # Shamir trains: tests/protocols/test_malicious_ml.py
def test_fit_local_malicious_refuses_the_smooth_sigmoid(scheme):
    # additive malicious training now runs on SPDZ2k (tests/protocols/test_spdz2k_ml.py, branch
    # spdz2kml); what it still lacks, as Shamir, is the smooth sigmoid
    X = np.arange(24, dtype=float).reshape(12, 2)
    y = (X @ np.array([1.0, -2.0]) + 0.5 > -10).astype(int)
    parts = [(X[i::3], y[i::3]) for i in range(3)]
    with pytest.raises(MaliciousUnsupportedError):
        mpc.fit_local("logistic", parts, scheme=scheme, security="malicious", sigmoid="smooth", epochs=1)
