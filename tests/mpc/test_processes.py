"""run_processes: parties as separate OS processes over encrypted TCP (and MQTT)."""

import multiprocessing
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from mpc.processes import PartyProcessError, run_processes
from network.errors import ChannelClosedError, PeerUnavailableError
from protocols import beaver, core
from protocols.arith.field import Mersenne61
from protocols.errors import SessionAbortedError

pytestmark = pytest.mark.timeout(60)

N = 1000


def _plain(seed: int):
    rng = np.random.default_rng(seed)  # public test inputs, known to every process
    return rng.integers(0, 2**30, N, dtype=np.uint64), rng.integers(0, 2**30, N, dtype=np.uint64)


async def mul_job(s, seed):
    px, py = _plain(seed)
    x = await core.input(s, px if s.pid == 0 else None, 0)
    y = await core.input(s, py if s.pid == 1 else None, 1)
    z = await beaver.mul(s, x, y)
    (oz,) = await core.open(s, z)
    return bool((oz == px * py).all())


async def killed_job(s, seed):
    px, _ = _plain(seed)
    x = await core.input(s, px if s.pid == 0 else None, 0)
    if s.pid == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    (ox,) = await core.open(s, x)
    return ox


def _children() -> set[int]:
    """Live child processes of this process (from /proc), plus multiprocessing's own list."""
    me, out = os.getpid(), set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me and fields[0] != "Z":
            cmd = (stat.parent / "cmdline").read_bytes()
            if b"resource_tracker" not in cmd:  # multiprocessing's shared helper, not a party
                out.add(int(stat.parent.name))
    return out | {p.pid for p in multiprocessing.active_children() if "party" in p.name}


def test_three_processes_tcp_beaver_mul():
    before = _children()
    run = run_processes(3, mul_job, job_args=(7,), transport="tcp", timeout=10)
    assert run.results == [True, True, True]
    # one mul: 2*(n-1)*N*8 bytes per party; input and open are extra but identical per run
    assert all(st.rounds == 4 for st in run.stats)
    assert len(run.party_seconds) == 3 and run.seconds > 0
    assert _children() <= before


@pytest.mark.parametrize("cipher", ["ChaChaPoly", "AESGCM"])
def test_processes_tcp_each_cipher(cipher):
    """Every link runs the cipher the parent chose (issue 15: AESGCM where the CPU has AES)."""
    run = run_processes(2, mul_job, job_args=(5,), transport="tcp", timeout=10, cipher=cipher)
    assert run.results == [True, True]


def test_processes_unknown_cipher_refused():
    from protocols.errors import ParameterError

    with pytest.raises(ParameterError, match="cipher"):
        run_processes(2, mul_job, job_args=(5,), transport="tcp", cipher="RC4")


def test_three_processes_mqtt_beaver_mul(mqtt_broker):
    run = run_processes(3, mul_job, job_args=(8,), transport="mqtt", timeout=10)
    assert run.results == [True, True, True]


def test_shamir_processes():
    run = run_processes(3, mul_job, job_args=(9,), scheme="shamir", transport="tcp", timeout=10,
                        domain=Mersenne61())  # mul_job passes uint64 words as GF(2^61-1) elements
    assert run.results == [True, True, True]  # inputs < 2^30: the products fit in GF(2^61-1)


def test_killed_child_is_a_typed_error_and_leaves_no_orphans():
    before = _children()
    with pytest.raises(PartyProcessError) as ei:
        run_processes(3, killed_job, job_args=(1,), transport="tcp", timeout=3)
    errs = ei.value.party_errors
    assert isinstance(errs[1], PartyProcessError)
    for pid in (0, 2):
        assert isinstance(errs[pid], PeerUnavailableError | ChannelClosedError | SessionAbortedError)
    assert _children() <= before
