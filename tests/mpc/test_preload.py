"""A node compiles its preprocessing source's kernels before it serves (mpc.local.preload_source,
called by Node.serve): on a fresh install the first import of the ot source compiles its numba
kernels (~6.5 s cold), which inside the first job would run against the peers' receive
deadline."""

import subprocess
import sys

import pytest

PROBE = """
import sys
from mpc.local import preload_source
mods = {"ot": "protocols.preprocessing._ot_jit", "rss3": "protocols.preprocessing._rss3core",
        "dn07": "protocols.preprocessing.dn07"}
name = sys.argv[1]
assert mods[name] not in sys.modules, "imported before the preload"
preload_source(name)
assert mods[name] in sys.modules, "not imported by the preload"
preload_source("shared_seed_dealer")  # no module of its own: nothing to do
"""


@pytest.mark.parametrize("name", ["ot", "rss3", "dn07"])
def test_preload_imports_the_source_module(name):
    r = subprocess.run([sys.executable, "-c", PROBE, name], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr

