"""The cost of malicious Shamir's value checks before masked openings (review5,
`protocols.malicious.chida18.check_values`): `python -m benchmarks.value_check_cost [N] [d]
[batch]` (default 2000 10 128).

Runs the horizontal logistic training (`protocols.apps.ml.train`, 3 parties in one process,
memory transport, the default in-process preprocessing, 1 epoch, standardised) twice: with
`check_values` replaced by a no-op (the schedule before review5) and as is; prints the
busiest party's rounds and bytes sent, the CPU seconds of all parties together (process time,
after a warm-up run) and whether the models are equal
(the checks change no value)."""

from __future__ import annotations

import asyncio
import sys
import time

import numpy as np

from mpc.bench.e2e import logistic_data
from mpc.local import close_sessions, open_sessions
from protocols.apps.ml import train
from protocols.malicious import chida18


def measure(N: int, d: int, batch: int, *, checks: bool) -> tuple[int, int, float, np.ndarray]:
    X, Y = logistic_data(N, d)
    real = chida18.check_values

    async def none(s):  # the schedule before review5: no value check
        chida18._state(s).values = 0

    async def job(s):
        idx = np.arange(N)[s.pid :: 3]
        m = await train(s, "logistic", X[idx], Y[idx], partition="horizontal", epochs=1, batch_size=batch)
        return await m.reveal(s)

    async def main():
        ss = await open_sessions(3, scheme="shamir", security="malicious", seed=5)
        t0 = time.process_time()
        out = await asyncio.gather(*(job(s) for s in ss))
        cpu = time.process_time() - t0
        st = [s.stats for s in ss]
        await close_sessions(ss)
        return out, st, cpu

    if not checks:
        chida18.check_values = none  # type: ignore[assignment]
    try:
        out, st, cpu = asyncio.run(main())
    finally:
        chida18.check_values = real  # type: ignore[assignment]
    return max(x.rounds for x in st), max(x.bytes_sent for x in st), cpu, out[0][0]


def main(argv: list[str]) -> None:
    N, d, batch = (int(a) for a in (argv + ["2000", "10", "128"][len(argv):])[:3])
    measure(N, d, batch, checks=False)  # warm-up (compiled kernels)
    with_ = measure(N, d, batch, checks=True)
    without = measure(N, d, batch, checks=False)
    iters = -(-N // batch)
    print(f"N={N} d={d} batch={batch} iterations={iters}")
    print(f"before review5 : rounds {without[0]} bytes {without[1]} cpu {without[2]:.2f} s")
    print(f"value checks   : rounds {with_[0]} bytes {with_[1]} cpu {with_[2]:.2f} s")
    print(f"models equal: {np.array_equal(without[3], with_[3])}")


if __name__ == "__main__":
    main(sys.argv[1:])
