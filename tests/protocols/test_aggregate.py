import numpy as np
import pytest

from mpc.local import run_local
from protocols.apps.aggregate import secure_count, secure_mean, secure_sum

pytestmark = pytest.mark.timeout(60)
RNG = np.random.default_rng(0)
DATA = [RNG.normal(5, 2, size=(n, 3)) for n in (40, 70, 25)]


def test_sum_count_mean():
    async def job(s):
        x = DATA[s.pid]
        return (await secure_sum(s, x, reveal_to=1), await secure_count(s, x[:, 0] > 5),
                await secure_mean(s, x))

    res = run_local(3, job, seed=1).results
    allx = np.vstack(DATA)
    assert res[0][0] is None and res[2][0] is None
    assert np.allclose(res[1][0], allx.sum(0), atol=1e-3)
    assert res[0][1] == int((allx[:, 0] > 5).sum())
    assert np.allclose(res[0][2], allx.mean(0), rtol=1e-4, atol=1e-4)
