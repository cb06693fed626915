"""Issue 16: outputs of a SPDZ2k node job (scheme additive, security malicious) to the
ANALYST are MAC-checked by the analyst's Client. Each node seals (x_i + 2^k r_i, its MAC
share, alpha_i) after the job's last check (spdz2k.output_to_client, Runner._seal_spdz2k);
the Client checks sum m_i = (sum alpha_i)(sum x_i) mod 2^128 [Cramer et al., SPDZ2k, CRYPTO
2018] and raises OutputIntegrityError otherwise. Before this a node could add any delta to the
value share it sealed and the analyst reconstructed a wrong sum, undetected.

The in-process tests run the protocol on in-memory sessions (the trusted dealer) and feed the
real sealed entries to the real Client._reconstruct; the daemon tests run three / two real
nodes on the dealer-free source, one of them the modified node tests/mpc/cheating_node.py.
The honest daemon totals (3 and 2 banks, now through this path) are
test_node_spdz2k.py::test_three_banks_aggregate_exactly_and_refuse_fraud_at_submission and
::test_two_banks_dishonest_majority_aggregates_exactly."""

import asyncio
import base64
import types

import numpy as np
import pytest
from malicious_helpers import run_parties
from nacl.public import SealedBox
from nacl.signing import SigningKey
from test_node import DATA
from test_node_spdz2k import _cluster, _manifest

from mpc.local import open_sessions
from mpc.node.client import Client, ClientError, OutputIntegrityError
from mpc.node.jobs import Output
from mpc.node.runner import Runner
from mpc.node.runutil import seal_to_analyst
from protocols.arith import ring128 as R
from protocols.arith.fixedpoint import FixedPoint
from protocols.errors import SessionAbortedError
from protocols.malicious import spdz2k

pytestmark = pytest.mark.timeout(240)

X = np.array([3, 1 << 40, (1 << 64) - 5, 7], dtype=np.uint64)  # -5 mod 2^64
Y = np.array([[11, 2], [3, 4]], dtype=np.uint64)
DELTA = 16 << 16


def _deliver_in_process(n=3, seed=7):
    """n in-memory SPDZ2k parties compute sum = X * 3 + 5 and prod = Y * Y, then each seals
    both outputs to a fresh analyst key as the node does (Runner._seal_spdz2k). Returns
    (analyst signing key, one /result body per party, every party's session, the values'
    share sums mod 2^128 before the mask)."""
    sk = SigningKey.generate()
    m = types.SimpleNamespace(analyst_key=bytes(sk.verify_key))

    async def job(s):
        x = await spdz2k.input(s, X if s.pid == 0 else None, 0, X.shape)
        y = await spdz2k.input(s, Y if s.pid == s.n - 1 else None, s.n - 1, Y.shape)
        outs = {"sum": Output(x * 3 + 5, 0), "prod": Output(await spdz2k.mul(s, y, y), 0)}
        plain = {k: o.share.x.copy() for k, o in outs.items()}
        entries = {k: {"f": 0, "shape": list(o.share.shape)} for k, o in outs.items()}
        await Runner._seal_spdz2k(s, m, outs, sorted(outs), entries)
        return entries, plain

    async def main():
        ss = await open_sessions(n, scheme="additive", security="malicious", seed=seed)
        return await run_parties(ss, job), ss

    got, ss = asyncio.run(main())
    bodies = [{"job_id": "j1", "result": {
        "scheme": "additive", "n": n, "t": None, "security": "malicious", "pid": i,
        "computation": "aggregate_sum", "parameters": {}, "outputs": got[i][0]}}
        for i in range(n)]
    plain = {k: R.sum(np.stack([got[i][1][k] for i in range(n)]), axis=0) for k in got[0][1]}
    return sk, bodies, ss, plain


def _reconstruct(sk, bodies):
    c = Client(["http://127.0.0.1:1"], key=bytes(sk), consortium="demo")
    return c._reconstruct("j1", {f"http://node{i}": b for i, b in enumerate(bodies)})


def _tamper(sk, body, name, fn):
    """Open party body's sealed entry of `name` with the analyst's key, apply fn to its
    (2N + 1, 2) limb array (N value shares, N MAC shares, alpha_i), seal it again (what a
    cheating node can seal)."""
    e = body["result"]["outputs"][name]
    raw = SealedBox(sk.to_curve25519_private_key()).decrypt(base64.b64decode(e["sealed"]))
    w = np.frombuffer(raw, dtype="<u8").astype(np.uint64).reshape(e["wire_shape"]).copy()
    w = fn(w)
    e["sealed"] = seal_to_analyst(bytes(sk.verify_key), w.astype("<u8").tobytes())


def _want():
    dom = spdz2k_domain()
    return {"sum": FixedPoint(dom, 0).decode(X * np.uint64(3) + np.uint64(5)).tolist(),
            "prod": FixedPoint(dom, 0).decode(Y * Y).tolist()}


def spdz2k_domain():
    from mpc.node.runner import domain_for

    return domain_for("additive")


# ------------------------------------------------------------------------ in process ---
@pytest.mark.parametrize("n", [2, 3])
def test_client_opens_honest_spdz2k_outputs_exactly(n):
    sk, bodies, ss, plain = _deliver_in_process(n)
    res = _reconstruct(sk, bodies)
    assert res.outputs == _want()
    # the sealed value is masked: its upper 64 bits are not the share sum's (2^-64 to fail)
    box = SealedBox(sk.to_curve25519_private_key())
    e = [b["result"]["outputs"]["sum"] for b in bodies]
    ws = [np.frombuffer(box.decrypt(base64.b64decode(x["sealed"])), dtype="<u8").reshape(9, 2)
          for x in e]
    sealed = R.sum(np.stack([w[:4] for w in ws]), axis=0)
    assert np.array_equal(R.lo(sealed), R.lo(plain["sum"]))
    assert not np.array_equal(sealed[:, 1], plain["sum"][:, 1])


def test_mac_key_is_released_once_and_the_session_computes_nothing_more():
    _, _, ss, _ = _deliver_in_process(2)
    for s in ss:
        ctx = s._state.ext["spdz2k"]
        assert ctx.alpha is None and ctx.failed == "released"
        with pytest.raises(SessionAbortedError):
            asyncio.run(spdz2k.check(s))


def _own_alpha(w):
    return w[-1].copy()


def _shift_value(w):
    w[0, 0] += np.uint64(DELTA)
    return w


def _shift_value_and_mac(w):  # its own alpha_i * delta: its best guess of alpha * delta
    n_el = (w.shape[0] - 1) // 2
    d = R.from_u64(np.array(DELTA, dtype=np.uint64))
    w[0] = R.add(w[0], d)
    w[n_el] = R.add(w[n_el], R.mul(d, _own_alpha(w)))
    return w


def _shift_key(w):
    w[-1, 0] += np.uint64(1)
    return w


def _key_upper_bits(w):  # alpha_i is in Z_2^64: a word above it is refused
    w[-1, 1] = np.uint64(1)
    return w


def _shift_all_consistently(w):  # value by delta, key by 1, MAC by what its own terms give
    n_el = (w.shape[0] - 1) // 2
    d, a = R.from_u64(np.array(DELTA, dtype=np.uint64)), R.from_u64(np.array(1, dtype=np.uint64))
    x_new = R.add(w[0], d)
    w[n_el] = R.add(w[n_el], R.sub(R.mul(x_new, R.add(w[-1], a)), R.mul(w[0], w[-1])))
    w[0], w[-1] = x_new, R.add(w[-1], a)
    return w


@pytest.mark.parametrize("fn", [_shift_value, _shift_value_and_mac, _shift_key, _key_upper_bits,
                                _shift_all_consistently])
@pytest.mark.parametrize("cheater", [0, 2])
def test_client_catches_a_node_that_seals_shifted_shares(fn, cheater):
    sk, bodies, _, _ = _deliver_in_process(3)
    _tamper(sk, bodies[cheater], "sum", fn)
    with pytest.raises(OutputIntegrityError, match="output 'sum' failed the MAC check") as e:
        _reconstruct(sk, bodies)
    assert str(DELTA) not in str(e.value) and e.value.code == "security.cheating_detected"


def test_client_refuses_a_malformed_share():
    sk, bodies, _, _ = _deliver_in_process(2)
    _tamper(sk, bodies[1], "prod", lambda w: w[:-1])  # alpha_i left out
    with pytest.raises(OutputIntegrityError, match="share of output 'prod' is malformed"):
        _reconstruct(sk, bodies)


def test_a_node_cannot_report_semi_honest_to_skip_the_check():
    """The security field is agreed metadata: a node that reports "semi-honest" (so that
    the client would add value shares without the MAC) is refused as a disagreement."""
    sk, bodies, _, _ = _deliver_in_process(2)
    bodies[1]["result"]["security"] = "semi-honest"
    with pytest.raises(ClientError, match="disagree"):
        _reconstruct(sk, bodies)


# --------------------------------------------------------------------------- daemons ---
@pytest.mark.parametrize("mode, n, prep, insecure", [
    ("sealshift", 3, "shared_seed_dealer", True),  # the delivery path is the same with "ot"
    ("sealshiftmac", 2, "ot", False)])
def test_daemon_cheater_shifting_its_sealed_share_is_caught_by_the_client(tmp_path, mode, n, prep,
                                                                          insecure):
    """The last bank (modified) adds 16.0 to its value share of the first column total it
    seals to the analyst ("sealshiftmac": and its alpha_i * delta to the MAC share). Every
    node completes the job (the nodes' own checks see nothing: the shift is after them); the
    analyst's Client raises OutputIntegrityError and returns nothing. (On main the Client
    returned the total + 16.0 in the first column, silently: this test failed there.) The
    3-bank case runs the shared-seed dealer (--insecure) for time; the 2-bank case the
    dealer-free source."""
    cl = _cluster(tmp_path, n=n, cheat=mode, cheater=n - 1, preprocessing=prep, insecure=insecure)
    try:
        c = cl.client()
        job = c.submit(_manifest("shift", n=n))
        with pytest.raises(OutputIntegrityError, match=r"output '(count|sum)' failed the MAC"):
            got = c.result(job, timeout=120)
            want = np.concatenate(DATA[:n]).sum(axis=0)
            print("accepted:", got.outputs["sum"], "wanted:", want)  # on main: first + 16.0
        for i in range(n):
            assert cl.status_of(i, job)["status"] == "done"
    finally:
        cl.stop()
