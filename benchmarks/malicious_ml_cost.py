"""Rounds and bytes per party of the malicious Shamir trainers (issue 16: the cost of the
bounded intermediates), 60 x 3, 3 in-process parties, trusted dealer: logistic regression by
SGD, or with "model" in the hyperparameters another model ("linear" / "ridge": the closed
form unless a "solver" is given; the label is then a linear function of X).

    python -m benchmarks.malicious_ml_cost horizontal|vertical [JSON hyperparameters]
    python -m benchmarks.malicious_ml_cost horizontal '{"model": "ridge", "alpha": 1.0}'

Prints one JSON line: rounds and MB sent per party (total, and the `prepare_batch` share as
"offline"), the process CPU seconds of all three parties, the released coefficients. To
compare with another tree, run it with PYTHONPATH pointing at that tree."""

from __future__ import annotations

import asyncio
import json
import sys
import time

import numpy as np

from mpc.bench.e2e import logistic_data
from mpc.local import close_sessions, open_sessions
from protocols.apps.ml import train
from protocols.malicious.batch import OFFLINE


def main(argv: list[str]) -> dict:
    part = argv[0] if argv else "horizontal"
    hp = json.loads(argv[1]) if len(argv) > 1 else {"epochs": 1, "batch_size": 20}
    hp = dict(hp)
    model = hp.pop("model", "logistic")
    X, y = logistic_data(60, 3)
    if model != "logistic":
        y = X @ [1.5, -0.5, 2.0] + 0.3

    async def job(s):
        if part == "horizontal":
            idx = np.arange(60)[s.pid::3]
            m = await train(s, model, X[idx], y[idx], partition="horizontal", **hp)
        else:
            m = await train(s, model, X[:, s.pid : s.pid + 1], y if s.pid == 0 else None,
                            partition="vertical", **hp)
        return (await m.reveal(s)), list(s._state.ext.get(OFFLINE, [0.0, 0, 0]))

    async def run() -> tuple[list, list]:
        ss = await open_sessions(3, scheme="shamir", security="malicious", seed=5)
        out = await asyncio.gather(*(job(s) for s in ss))
        await close_sessions(ss)
        return out, [s.stats for s in ss]

    t0 = time.process_time()
    out, stats = asyncio.run(run())
    return {"partition": part, "model": model, "hp": hp, "rounds": [st.rounds for st in stats],
            "MB_sent": [round(st.bytes_sent / 1e6, 2) for st in stats],
            "offline_rounds": [o[1][1] for o in out], "offline_MB": [round(o[1][2] / 1e6, 2) for o in out],
            "cpu_s": round(time.process_time() - t0, 1),
            "coef": [round(float(c), 4) for c in out[0][0][0]]}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
