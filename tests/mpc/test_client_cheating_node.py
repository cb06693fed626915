"""The analyst's Client against a cheating bank (a modified node serving its own API): the
result's metadata (scheme, n, t, computation, parameters, each output's fixed-point scale and
shape) and each node's party index come from the nodes, so one node must not be able to change
how the others' shares are read. Three real daemons (Shamir, honest majority); the cheating
node is a test double of its API answers: the honest node's /result body, edited as a
modified node would serve it."""

import copy

import numpy as np
import pytest
from test_node import DATA, Cluster, _manifest

from mpc.node.client import Client, ClientError

pytestmark = pytest.mark.timeout(120)


class CheatingNode(Client):
    """The analyst's Client, except that node `liar`'s /result answers pass through `edit`."""

    def __init__(self, *a, liar: str, edit, **kw):
        super().__init__(*a, **kw)
        self.liar, self.edit = liar, edit

    def _call(self, node, method, path, body=None):
        status, out = super()._call(node, method, path, body)
        if node == self.liar and path.endswith("/result") and status == 200:
            out = copy.deepcopy(out)
            self.edit(out["result"])
        return status, out


def _pid(i):
    def edit(r):
        r["pid"] = i
    return edit


def _scale(r):  # report a larger fixed-point scale: every value / 2^3
    for e in r["outputs"].values():
        e["f"] += 3


def _params(r):
    r["parameters"] = {**(r.get("parameters") or {}), "groups": ["x"]}
    r["computation"] = "aggregate_mean"


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    cl = Cluster(tmp_path_factory.mktemp("cheat"), scheme="shamir")
    cl.start_all()
    try:
        c = cl.client()
        job = c.submit(_manifest("cheat"))
        res = c.result(job, timeout=60)
        yield cl, job, res
    finally:
        cl.stop()


@pytest.mark.parametrize("liar, edit", [
    (2, _pid(1)),   # claims another node's index: its share replaces that node's share
    (0, _pid(2)),
    (0, _scale),    # the first node's metadata used to decide how every share is decoded
    (2, _scale),
    (0, _params),
])
def test_a_node_cannot_change_how_the_result_is_read(done, liar, edit):
    cl, job, honest = done
    want = np.concatenate(DATA).sum(axis=0)
    assert np.allclose(honest.outputs["sum"], want, atol=1e-2)
    c = CheatingNode(cl.info["api"], key=cl.info["analyst_key"], liar=cl.info["api"][liar],
                     edit=edit)
    with pytest.raises(ClientError, match="disagree|party indices"):
        got = c.result(job, timeout=30)
        # before the check: a wrong result, silently (printed if the raise did not happen)
        print("accepted:", got.outputs, "wanted:", honest.outputs)


def test_honest_nodes_still_agree(done):
    cl, job, honest = done
    got = cl.client().result(job, timeout=30)
    assert got.outputs == honest.outputs
