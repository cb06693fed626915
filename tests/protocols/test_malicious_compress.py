"""The offline share of the verification (malperf2, issue 16): `chida18.compress_pending`
folds the pairs the preparations record under the live key (MACed mask rows, the
comparison masks' block products) into one pair at the end of the preparation, so the
online verification sums the online products only. Exact counts, and cheaters in the
compressed pairs or in the compression's coin caught on every honest party; a broken
compression (fixed coefficients) lets cancelling errors through (the test has power)."""

from __future__ import annotations

import numpy as np
import pytest
from malicious_helpers import Cheat, run

from protocols import malicious as mal
from protocols.errors import CheatingDetectedError
from protocols.malicious import chida18
from protocols.malicious import compare as mc

pytestmark = pytest.mark.timeout(120)

X = np.array([0, 1, -1, 5, -7, 1 << 40, -(1 << 40), 3])


async def ltz_job(s):
    """Input (mking#0, its range check #1), prepare_compare (bits: #2 a, #3 a^2; #4 the MACs
    under the next key; #5 the block pair products, #6 the triples and quadruple), ltz."""
    D = s.domain
    x = await mal.input(s, D.from_int(X) if s.pid == 0 else None, 0, X.shape, bits=64)
    b0 = s.stats.copy()
    await mc.prepare_compare(s, X.size, "ltz")
    prep_rounds = (s.stats - b0).rounds
    pending = [(p[1].size, p[2].size) for p in chida18._state(s).pending]
    x = await mal.refresh(s, x)
    z = await mc.ltz(s, x)
    (v,) = await mal.open(s, z)
    return D.to_int(v).astype(np.int64), prep_rounds, pending


def test_preparation_leaves_one_pair():
    """After prepare_compare only the compressed pair is pending (sizes (1, 1)): the 64
    MACed rows and 169 block products per element are summed offline. Rounds of
    prepare_compare: bits 5 + MACs 2 + verify 3 + block products 4 + the coin 1 = 15."""
    res, errs, _ = run(ltz_job)
    assert errs == [None] * 3
    for v, rounds, pending in res:
        assert np.array_equal(v, (X < 0).astype(np.int64))
        assert rounds == 15
        assert pending == [(1, 1)]


def _caught(errs, check):
    for pid in (0, 1):
        assert isinstance(errs[pid], CheatingDetectedError), errs[pid]
        assert errs[pid].code == "security.cheating_detected"
    assert any(errs[pid].check == check for pid in (0, 1))


@pytest.mark.parametrize("cheat,check", [
    (("mcoin-off", [0]), "open"),  # its share of the compression's coin, to one party
    (("mcoin-off", None), "open"),  # the same share to both (off the degree-t polynomial)
    (("mking#5", [1]), "mac"),  # an offline block pair product (compressed), to king 1
    (("mking#6", [0]), "mac"),  # an offline triple / quadruple product (compressed)
    (("mking#4", [1]), "mac"),  # the MACs of the rows under the next key (compressed)
])
def test_cheater_in_compressed_pairs_caught(cheat, check):
    res, errs, _ = run(ltz_job, cheat=cheat)
    assert res == [None] * 3
    _caught(errs, check)


class _Cancel(Cheat):
    """The cheater adds +1 to the first and -1 to the second element of its d share sent to
    king 0 in the reduction `prefix` (king 0's chunk: the z half of the block pair products):
    two additive errors on products that cancel under coefficients 1, 1."""

    async def send(self, peer, tag, payload):
        base = tag.rsplit("/", 1)[-1]
        if base.startswith(self.prefix) and peer == 0 and payload.size:
            self.done_tag = tag
            vals = self.D.from_wire(payload, payload.shape[:-1])
            delta = self.D.from_int(np.array([1, -1] + [0] * (vals.size - 2), dtype=object))
            payload = self.D.to_wire(self.D.add(vals, delta.reshape(vals.shape)))
        await self.inner.send(peer, tag, payload)


def _run_cancel():
    return run(ltz_job, wrap=lambda ch: _Cancel(ch, ch_domain(), "mking#5"))


def ch_domain():
    from protocols.arith.field import Mersenne127

    return Mersenne127()


def test_cancelling_errors_caught():
    """Two errors in one offline block product that cancel under equal coefficients:
    caught by the compression's random coefficients ("mac" at the verification)."""
    res, errs, _ = _run_cancel()
    assert res == [None] * 3
    _caught(errs, "mac")


def test_broken_compression_misses_cancelling_errors(monkeypatch):
    """The deliberately broken variant: coefficients fixed to 1 let the same attack through
    (no error, results released): the test above has power."""
    monkeypatch.setattr(chida18, "_compress_alphas", lambda F, coin, count: F.from_int(np.ones(count, dtype=object)))
    res, errs, _ = _run_cancel()
    assert errs == [None] * 3 and all(r is not None for r in res)
