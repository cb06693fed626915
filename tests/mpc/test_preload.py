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



SPDZ2K_PROBE = """
from mpc.local import preload_spdz2k
from protocols.arith import _r128_jit
from protocols.malicious import _gf2_jit
kernels = [_r128_jit.beaver, _r128_jit.dot2, _r128_jit.matmul, _gf2_jit.clmul_sum]
assert not any(k.signatures for k in kernels), "compiled before the preload"
preload_spdz2k()
assert all(k.signatures for k in kernels), [k.__name__ for k in kernels if not k.signatures]
"""


def test_preload_spdz2k_compiles_its_kernels():
    """A malicious additive node (SPDZ2k) compiles or loads its Z_2^128 and GF(2) kernels
    before serving (Node.serve): they compile on first call, not on import."""
    r = subprocess.run([sys.executable, "-c", SPDZ2K_PROBE], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
