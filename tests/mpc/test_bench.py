"""`smpc bench` on tiny sizes: every op over every transport, JSON fields, plaintext check,
and the cost model's predictions equal to the measured rounds and bytes."""

import json

import pytest

from mpc import bench
from mpc.cli import main as cli_main

pytestmark = pytest.mark.timeout(60)

FIELDS = {
    "op", "size", "parties", "scheme", "transport", "seconds", "ops_per_s", "rounds",
    "bytes_per_party", "correct", "offline_seconds", "predicted_rounds",
    "predicted_bytes_per_party", "cost_model_ok", "network",
}
ALL_OPS = list(bench.OPS)


def _run(capsys, *argv) -> list[dict]:
    code = cli_main(["bench", "--json", "--repeat", "1", *argv])
    out = capsys.readouterr().out
    recs = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert code == 0, recs
    return recs


def _check(recs, **expect):
    for r in recs:
        assert FIELDS <= r.keys()
        assert r["correct"] is True, r
        assert r["cost_model_ok"] is True, r
        assert r["rounds"] == r["predicted_rounds"]
        assert r["bytes_per_party"] == r["predicted_bytes_per_party"]
        assert r["seconds"] > 0 and r["ops_per_s"] > 0 and r["offline_seconds"] >= 0
        for k, v in expect.items():
            assert r[k] == v


def test_memory_every_op_two_sizes(capsys):
    recs = _run(capsys, "--op", *ALL_OPS, "--size", "1", "37", "--transport", "memory")
    assert [(r["op"], r["size"]) for r in recs] == [(o, s) for o in ALL_OPS for s in (1, 37)]
    _check(recs, transport="memory", parties=3, scheme="additive")


@pytest.mark.parametrize("parties", [2, 4])
def test_memory_party_counts(capsys, parties):
    _check(_run(capsys, "--op", *ALL_OPS, "--size", "20", "--parties", str(parties)), parties=parties)


def test_shamir_ops(capsys):
    ops = [o for o in ALL_OPS if o != "truncate"]  # truncate: additive Z_2^64 only
    _check(_run(capsys, "--op", *ops, "--size", "20", "--scheme", "shamir"), scheme="shamir")


def test_truncate_refuses_shamir():
    with pytest.raises(Exception, match="additive"):
        bench.measure("truncate", 4, scheme="shamir", repeat=1)


def test_memory_simulation_is_named(capsys):
    recs = _run(capsys, "--op", "mul", "--size", "8", "--latency", "0.002", "--bandwidth", "1e8")
    _check(recs)
    assert "simulated latency 0.002" in recs[0]["network"]
    assert recs[0]["seconds"] >= 0.002  # at least one simulated one-way delay


def test_tcp_every_op(capsys):
    _check(_run(capsys, "--op", *ALL_OPS, "--size", "30", "--transport", "tcp"), transport="tcp")


def test_mqtt_every_op(capsys, mqtt_broker):
    _check(_run(capsys, "--op", *ALL_OPS, "--size", "30", "--transport", "mqtt"), transport="mqtt")


def test_tcp_processes(capsys):
    recs = _run(capsys, "--op", "mul", "matmul", "input", "--size", "50", "--transport", "tcp",
                "--processes")
    _check(recs, transport="tcp", processes=True)


def test_mqtt_processes(capsys, mqtt_broker):
    _check(_run(capsys, "--op", "mul", "--size", "50", "--transport", "mqtt", "--processes"),
           transport="mqtt", processes=True)


def test_table_output(capsys):
    assert cli_main(["bench", "--op", "mul", "open", "--size", "5", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "no simulated delay" in out and "rounds (model)" in out
    assert out.count("yes") == 2


def test_cost_model_formulas():
    # the documented costs: beaver.mul 2(n-1)Ne, open (n-1)Ne, input (n-1)(8 + Ne)
    assert bench.COST_MODEL["mul"](1000, 3, 8) == bench.Cost(1, 32000)
    assert bench.COST_MODEL["open"](10, 5, 8) == bench.Cost(1, 320)
    assert bench.COST_MODEL["input"](10, 2, 8) == bench.Cost(1, 88)


def test_wrong_result_is_an_error_not_a_time(monkeypatch):
    async def broken(s, op, px, py, out):
        return False

    monkeypatch.setattr(bench, "_check", broken)
    rec = bench.measure("mul", 10, repeat=1)
    assert rec["correct"] is False and rec["seconds"] is None and rec["ops_per_s"] is None
    assert "error" in rec


def test_bad_flag_combinations():
    with pytest.raises(Exception, match="memory"):
        bench.measure("mul", 10, transport="tcp", latency=0.01)
    with pytest.raises(Exception, match="processes"):
        bench.measure("mul", 10, transport="memory", processes=True)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("scheme,parties,source", [("shamir", 3, "dn07"), ("additive", 2, "ot"), ("additive", 3, "dealer")])
def test_triples_from_each_named_source(scheme, parties, source):
    from mpc.bench import measure

    rec = measure("triples", 512, parties=parties, scheme=scheme, source=source, repeat=1, seed=3)
    assert rec["correct"] and rec["cost_model_ok"] and rec["source"] == source
