"""Issue 16 in the node: an HONEST bank whose own data is outside the declared input range in a
consortium with security = "malicious" (three real daemons, Shamir). The bank refuses the
value in the input protocol (a typed refusal, protocols.errors.InputRangeRefusedError), so
EVERY node's job fails with input.range naming that bank, and nothing is released. (Before,
only the owner failed with a typed error; the others saw a vanished peer.)
Only for unscaled data (mlin): with the analyst's feature_scale the bank saturates its
scaled values instead (protocols.apps.ml.data.scaled_input), else whether the job fails
would tell the analyst whether max |x / scale| >= 2^15 for a scale of its choosing."""

import numpy as np
import pytest
from test_node import DATA
from test_node_malicious import _logistic, _mal_cluster

from mpc.node.client import JobFailedError

pytestmark = pytest.mark.timeout(180)

BANK = 1
ROW = 4


def test_honest_bank_out_of_range_every_node_fails_with_input_range(tmp_path):
    cl = _mal_cluster(tmp_path)  # writes bank*.csv from DATA; rewrite bank1's before any job
    try:
        x = DATA[BANK].copy()
        x[ROW, 0] = 1e8  # > 2^15 (and / feature_scale 100 = 1e6): outside the 32-bit input range
        lines = ["amount,fee,name,flag"] + [f"{a},{b},cust{k},{int(a > 100)}" for k, (a, b) in enumerate(x)]
        (tmp_path / f"bank{BANK}.csv").write_text("\n".join(lines) + "\n")
        c = cl.client()
        scaled = c.result(c.submit(_logistic("scaled")), timeout=150)  # saturated: no refusal
        assert scaled is not None
        unscaled = _logistic("refused")
        del unscaled["parameters"]["feature_scale"]
        job = c.submit(unscaled)
        with pytest.raises(JobFailedError) as e:
            c.result(job, timeout=150)
        assert all(r[1] == "input.range" for r in e.value.reasons.values()), e.value.reasons
        for i in range(3):
            st = cl.status_of(i, job)
            assert st["status"] == "failed" and st["code"] == "input.range", (i, st)
            assert cl.result_of(i, job)[0] == 409  # nothing released
            assert f"party(ies) [{BANK}] refused their input" in cl.log(i), i
        assert np.isfinite(x).all()
    finally:
        cl.stop()
