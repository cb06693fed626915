"""protocols.apps.dp_malicious (issue 16): the DP samplers on MShares match the exact
discrete Laplace / Gaussian pmf (chi-square; the same samples are rejected against a wrong
scale, so the test has power), every party opens the same noise, a changed share in a
sampler's product is caught on every honest party before anything is opened, and a party
that inputs a non-bit into the uniform's random bits is caught (check "bits")."""

import numpy as np
import pytest
from malicious_helpers import run
from test_dp import ALPHA, _chi2_p

from protocols import malicious as mal
from protocols.apps import dp
from protocols.apps import dp_malicious as dpm
from protocols.errors import CheatingDetectedError
from protocols.malicious import chida18

pytestmark = pytest.mark.timeout(300)


def _job(kind, param, N):
    async def job(s):
        z = await (dpm.discrete_laplace(s, (N,), param) if kind == "laplace"
                   else dpm.discrete_gaussian(s, (N,), param))
        (v,) = await mal.open(s, z)
        return s.domain.to_signed(v).astype(np.int64)

    return job


@pytest.mark.parametrize("kind,param,wrong,N", [("laplace", 2, 3, 1500), ("gaussian", 9, 16, 600)])
def test_malicious_sampler_matches_exact_pmf(kind, param, wrong, N):
    res, errs, _ = run(_job(kind, param, N), seed=11)
    assert errs == [None, None, None], errs
    x = res[0]
    assert all(np.array_equal(r, x) for r in res)
    pmf = dp.laplace_pmf if kind == "laplace" else dp.gaussian_pmf
    assert _chi2_p(x, lambda k: pmf(k, param)) > ALPHA
    assert _chi2_p(x, lambda k: pmf(k, wrong)) < ALPHA  # power: a wrong scale is rejected


def test_add_noise_keeps_the_value_and_its_key():
    async def job(s):
        x = await mal.input(s, s.domain.from_int(np.array([1000, -7, 0])) if s.pid == 0 else None,
                            0, (3,))
        noisy = await dpm.add_noise(s, x, dp.calibrate("gaussian", 50.0, 1e-6, 1.0))
        (v,) = await mal.open(s, noisy)
        return s.domain.to_signed(v).astype(np.int64)

    res, errs, _ = run(job)
    assert errs == [None, None, None], errs
    assert np.all(np.abs(res[0] - [1000, -7, 0]) <= 10) and all(np.array_equal(r, res[0]) for r in res)


def test_changed_share_in_the_sampler_caught_nothing_opened():
    res, errs, _ = run(_job("laplace", 2, 50), cheat=("mking", None))
    assert res[:2] == [None, None]
    assert all(isinstance(e, CheatingDetectedError) for e in errs[:2]), errs


def test_non_bit_input_to_the_uniform_caught(monkeypatch):
    """Party 1 (one of the t + 1 bit contributors) inputs 2 for every bit: with bits that are
    not 0/1 it could bias U (and so the noise); caught as check "bits" on every other party."""
    real = chida18.input_unchecked

    async def input_unchecked(s, x, owner, shape):
        if s.pid == 1 and owner == 1 and x is not None:
            x = s.domain.add(x, s.domain.from_int(np.full(x.shape, 2, dtype=np.int64)))
        return await real(s, x, owner, shape)

    monkeypatch.setattr(chida18, "input_unchecked", input_unchecked)
    res, errs, _ = run(_job("laplace", 2, 20))
    assert res == [None, None, None]
    for pid in (0, 2):
        assert isinstance(errs[pid], CheatingDetectedError) and errs[pid].check == "bits", errs


def test_add_noise_with_two_sigmas_keeps_each_entry_in_place():
    """Entries with different Gaussian sigmas are drawn in one batch per sigma (ascending)
    and put back in entry order: each entry gets the noise of its own sigma (sigma 0.15 at
    entries 1 and 3, sigma 535 at 0 and 2; swapped, entry 1 or 3 would move by more than 3
    except with probability ~2.5e-5)."""
    small = dp.calibrate("gaussian", 60.0, 1e-6, 1.0)
    large = dp.calibrate("gaussian", 1.0, 1e-6, 100.0)
    assert small.scale < 0.2 and large.scale > 500

    async def job(s):
        vals = np.array([1000, -700, 0, 50])
        x = await mal.input(s, s.domain.from_int(vals) if s.pid == 0 else None, 0, (4,))
        noisy = await dpm.add_noise(s, x, [large, small, large, small])
        (v,) = await mal.open(s, noisy)
        return s.domain.to_signed(v).astype(np.int64)

    res, errs, _ = run(job)
    assert errs == [None, None, None], errs
    assert np.all(np.abs(res[0][[1, 3]] - [-700, 50]) <= 3), res[0]
    assert np.all(np.abs(res[0][[0, 2]] - [1000, 0]) <= 10 * large.scale), res[0]
