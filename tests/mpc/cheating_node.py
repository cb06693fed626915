"""A modified node (a test double for issue 16): `python cheating_node.py MODE CONFIG` runs
the ordinary daemon (further arguments, e.g. --insecure, go to `smpc node`), except:
- MODE a tag prefix: every job session's channel is wrapped in malicious_helpers.Cheat: the
  first message whose tag starts with MODE gets 1 added to its first field element (an
  additive error on one share; in a SPDZ2k consortium to its first raw Z_2^128 limb);
- MODE "phase:NAME:PREFIX[:K]": the same, aimed at a named step rather than a message index
  (malicious_helpers.parse_target / PHASES): the K-th distinct tag starting with PREFIX sent
  while phase NAME runs, e.g. "phase:sgd:mking#" = the first DN07 reduction of the SGD loop
  (robust to the number of products before it);
- MODE "onehot": as the owner of a fraud_aggregate, it inputs the group row e_t + 4096 e_d
  for its first transaction instead of its one-hot key (the attack that would read that
  row's flag in group d's count).
- MODE "takeanddrop" (review2): a recipient bank that keeps what is revealed to it (appended
  to loot.jsonl beside its config) and drops out of the job at the first reveal to another
  party, so that the honest banks fail the job after its noisy output has left.
- MODE "equivocate" (hard4): in the manifest agreement it tells node 0 a min_group_size 9
  larger than its own and every other node its own (the views are sent to each peer
  separately), so that the honest nodes derive different public terms (k).
- MODE "modelshift" (issue 16): its ModelStore returns its stored share of a model with
  2^16 (1.0 in fixed point) added to the first coefficient's share (a node that edits its
  own share file consistently: it can, the file is its own); it runs the protocol honestly
  on that share.
- MODE "sealshift" / "sealshiftmac" (issue 16, SPDZ2k): at delivery it adds DELTA to its
  value share of the first element of every output addressed to the analyst (what it seals
  to the analyst; the protocol's checks before it see nothing); "sealshiftmac" also adds
  alpha_i * DELTA to its MAC share of it (its own key share: the best guess it has of
  alpha * DELTA).
Nothing else differs."""

import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: malicious_helpers

from malicious_helpers import Cheat, install_phases, parse_target  # noqa: E402

from mpc.node import runner  # noqa: E402

_session = runner.Runner._session


def _cheating_session(self, ch, r):
    s = _session(self, ch, r)
    prefix, phase, k = parse_target(PREFIX)
    # SPDZ2k (malicious additive) sends Z_2^128 limbs and bytes, not domain elements: 1 is
    # added to the first raw wire word
    dom = None if s.security == "malicious" and s.scheme.kind == "additive" else s.domain
    return dataclasses.replace(s, channel=Cheat(s.channel, dom, prefix, phase=phase, skip=k))


def _onehot_attack() -> None:
    import numpy as np

    from protocols.apps import fraud_malicious as fm

    honest = fm.group_totals  # where the owner inputs its group matrix (the node calls it)

    async def group_totals(s, flags, G_local, owner, K):
        if G_local is not None:
            G = s.domain.to_int(G_local).astype(np.int64)
            G[0] = 0
            G[0, 0], G[0, 1] = 1, 4096
            G_local = s.domain.from_int(G)
        return await honest(s, flags, G_local, owner, K)

    fm.group_totals = group_totals


def _take_and_drop(config: str) -> None:
    import json

    from mpc.node import checked
    from network.errors import PeerUnavailableError

    loot = Path(config).resolve().parent / "loot.jsonl"
    honest = checked.reveal_fn

    def reveal_fn(share):
        real = honest(share)

        async def reveal(s, sh, idx):
            if idx != s.pid:  # another party's turn: drop out, keeping what was revealed
                await s.abort(PeerUnavailableError("dropped out after taking the output"))
                raise PeerUnavailableError("dropped out after taking the output")
            got = await real(s, sh, idx)
            with loot.open("a") as f:
                f.write(json.dumps([int(v) for v in s.domain.to_signed(got).reshape(-1)]) + "\n")
            return got

        return reveal

    checked.reveal_fn = reveal_fn


def _equivocate() -> None:
    import json

    honest = runner.Runner._agree

    async def _agree(self, ch, m, what, mine):
        if what != "manifest":
            return await honest(self, ch, m, what, mine)
        send = ch.send

        async def lying_send(j, tag, raw):
            if tag == "agree/manifest" and j == 0:
                v = json.loads(raw)
                v["min_group_size"] = int(v["min_group_size"]) + 9
                raw = json.dumps(v, sort_keys=True).encode()
            return await send(j, tag, raw)

        ch.send = lying_send
        try:
            return await honest(self, ch, m, what, mine)
        finally:
            ch.send = send

    runner.Runner._agree = _agree


def _model_shift() -> None:
    import numpy as np

    from mpc.node import models
    from protocols.session import Share

    honest = models.ModelStore.load

    def load(self, name, s):
        sm = honest(self, name, s)
        bump = np.zeros(sm.coef.shape, dtype=np.int64)
        bump[0] = 1 << 16
        return dataclasses.replace(sm, coef=Share(s.domain.add(sm.coef.data,
                                                               s.domain.from_int(bump)), s))

    models.ModelStore.load = load


#: what "sealshift" adds to the first element's value share: 16.0 at f = 16
DELTA = 16 << 16


def _seal_shift(with_mac: bool) -> None:
    from protocols.arith import ring128 as R
    from protocols.malicious import spdz2k

    honest = runner.Runner._deliver

    async def _deliver(self, s, m, outputs):
        if "analyst" in m.recipients:
            for name, out in list(outputs.items()):
                sh = out.share
                if not isinstance(sh, spdz2k.AShare):
                    continue
                d = R.zeros(sh.shape)
                d.reshape(-1, 2)[0, 0] = DELTA
                dm = R.mul(d, s._state.ext["spdz2k"].alpha) if with_mac else R.zeros(sh.shape)
                outputs[name] = dataclasses.replace(
                    out, share=spdz2k.AShare(R.add(sh.x, d), R.add(sh.m, dm), s))
        return await honest(self, s, m, outputs)

    runner.Runner._deliver = _deliver


if __name__ == "__main__":
    PREFIX = sys.argv[1]
    if PREFIX == "onehot":
        _onehot_attack()
    elif PREFIX == "modelshift":
        _model_shift()
    elif PREFIX == "takeanddrop":
        _take_and_drop(sys.argv[2])
    elif PREFIX == "equivocate":
        _equivocate()
    elif PREFIX in ("sealshift", "sealshiftmac"):
        _seal_shift(PREFIX == "sealshiftmac")
    else:
        if parse_target(PREFIX)[1] is not None:
            install_phases()
        runner.Runner._session = _cheating_session
    from mpc.cli.main import main

    sys.exit(main(["node", "--config", sys.argv[2], *sys.argv[3:]]))  # e.g. --insecure
