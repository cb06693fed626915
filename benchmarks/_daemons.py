"""Start and stop the `smpc node` processes of a consortium for the node benchmarks
(node_load.py, node_precompute.py): one process per config, its log beside it, each API
polled until /health answers."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def start_nodes(info: dict, folder: Path, timeout: float = 30.0) -> list[subprocess.Popen]:
    """One `smpc node` per config of `info` (mpc.node.consortium.write_consortium), logging to
    folder/bank<i>.log; returns once every node's /health answers (SystemExit otherwise).
    The caller stops them with `stop_nodes` (also on failure: the list is filled as they
    start, so pass it in a finally)."""
    procs: list[subprocess.Popen] = []
    start_into(procs, info, folder, timeout)
    return procs


def start_into(procs: list[subprocess.Popen], info: dict, folder: Path,
               timeout: float = 30.0) -> None:
    for i, cfg in enumerate(info["configs"]):
        log = open(folder / f"bank{i}.log", "w")  # noqa: SIM115 (the process keeps it)
        procs.append(subprocess.Popen([sys.executable, "-m", "mpc.cli", "node", "--config",
                                       str(cfg)], stdout=log, stderr=subprocess.STDOUT))
    for api in info["api"]:
        t_end = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(api + "/health", timeout=1)  # noqa: S310 (loopback)
                break
            except OSError:
                if time.monotonic() > t_end:
                    raise SystemExit(f"node {api} did not start") from None
                time.sleep(0.1)


def stop_nodes(procs: list[subprocess.Popen], *, graceful: bool = True) -> None:
    """SIGTERM (graceful) or SIGKILL every node still running, and wait for it."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM) if graceful else p.kill()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
