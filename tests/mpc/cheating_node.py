"""A modified node (a test double for issue 16): `python cheating_node.py PREFIX CONFIG` runs
the ordinary daemon, except that every job session's channel is wrapped in
malicious_helpers.Cheat: the first message whose tag starts with PREFIX gets 1 added to its
first field element (an additive error on one share). Nothing else differs."""

import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: malicious_helpers

from malicious_helpers import Cheat  # noqa: E402

from mpc.node import runner  # noqa: E402

_session = runner.Runner._session


def _cheating_session(self, ch, r):
    s = _session(self, ch, r)
    return dataclasses.replace(s, channel=Cheat(s.channel, s.domain, PREFIX))


if __name__ == "__main__":
    PREFIX = sys.argv[1]
    runner.Runner._session = _cheating_session
    from mpc.cli.main import main

    sys.exit(main(["node", "--config", sys.argv[2]]))
