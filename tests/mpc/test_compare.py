"""`smpc bench --compare mpyc`: the same workloads in MPyC 0.11 as separate processes
(skipped without the `compare` extra)."""

import json

import pytest

from mpc.bench import compare_mpyc
from mpc.bench import run as bench
from mpc.cli.main import main as cli_main

pytestmark = pytest.mark.timeout(90)

mpyc = pytest.importorskip("mpyc")


@pytest.mark.parametrize("op", ["mul", "inner", "fixed_mul", "compare"])
def test_mpyc_runs_each_workload_correctly(op):
    m = compare_mpyc.run_mpyc(op, 20, 3, repeat=1)
    assert m["correct"] is True and m["seconds"] > 0 and m["ops_per_s"] > 0, m
    assert m["engine"] == "MPyC 0.11" and m["parties"] == 3


def test_compare_flag_adds_mpyc_and_ratio(capsys):
    code = cli_main(["bench", "--json", "--op", "mul", "--size", "50", "--parties", "2",
                     "--transport", "tcp", "--processes", "--repeat", "1", "--compare", "mpyc"])
    assert code == 0
    (rec,) = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.strip()]
    assert rec["correct"] and rec["mpyc"]["correct"] and rec["mpyc"]["parties"] == 2
    assert rec["ratio_vs_mpyc"] == pytest.approx(rec["ops_per_s"] / rec["mpyc"]["ops_per_s"])


def test_op_without_counterpart_says_so():
    rec = compare_mpyc.attach_mpyc(bench.measure("open", 5, repeat=1))
    assert "no MPyC counterpart" in rec["mpyc"]["error"] and "ratio_vs_mpyc" not in rec


def test_the_mpyc_check_has_power():
    X, Y = compare_mpyc._inputs("fixed_mul", 100)
    assert compare_mpyc.check_result("fixed_mul", X, Y, X * Y) == (0, 0.0)
    off = X * Y
    off[7] += 2.0**-12
    assert compare_mpyc.check_result("fixed_mul", X, Y, off)[0] == 1
    X, Y = compare_mpyc._inputs("compare", 50)
    assert compare_mpyc.check_result("compare", X, Y, 1.0 - (X < Y))[0] == 50


def test_mpyc_logistic_regression_same_data_and_hyperparameters():
    # smpc bench's workload in MPyC SecFxp(64, 16): accuracy within 1 pp of the float reference
    m = compare_mpyc.run_mpyc("logistic_regression", 60, 3, repeat=1, epochs=1)
    assert m["correct"] is True and m["seconds"] > 0, m
    assert abs(m["accuracy"] - m["float_accuracy"]) <= 0.01 and m["epochs"] == 1
    assert m["ops_per_s"] == pytest.approx(60 / m["seconds"])


def test_compare_logistic_regression_ratio(capsys):
    code = cli_main(["bench", "--json", "--op", "logistic_regression", "--size", "60",
                     "--epochs", "1", "--transport", "tcp", "--processes", "--repeat", "1",
                     "--compare", "mpyc"])
    assert code == 0
    (rec,) = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.strip()]
    assert rec["correct"] and rec["mpyc"]["correct"] and rec["ratio_vs_mpyc"] > 0
    total = rec["seconds"] + rec["offline_seconds"]  # MPyC has no offline phase
    assert rec["ratio_vs_mpyc_end_to_end"] == pytest.approx(rec["mpyc"]["seconds"] / total)


def test_end_to_end_ratio_counts_the_offline_phase(capsys):
    # a dealer-free source: the end-to-end ratio charges smpc its offline seconds, so it is
    # below the online-only ratio by exactly (online + offline) / online
    code = cli_main(["bench", "--json", "--op", "logistic_regression", "--size", "60",
                     "--epochs", "1", "--parties", "3", "--source", "rss3", "--repeat", "1",
                     "--compare", "mpyc"])
    assert code == 0
    out = capsys.readouterr().out
    (rec,) = [json.loads(x) for x in out.splitlines() if x.strip()]
    assert rec["source"] == "rss3" and rec["offline_seconds"] > 0
    online_ratio = rec["mpyc"]["seconds"] / rec["seconds"]
    assert rec["ratio_vs_mpyc"] == pytest.approx(online_ratio)
    assert rec["ratio_vs_mpyc_end_to_end"] == pytest.approx(
        online_ratio * rec["seconds"] / (rec["seconds"] + rec["offline_seconds"]))
    assert rec["ratio_vs_mpyc_end_to_end"] < rec["ratio_vs_mpyc"]


def test_mpyc_logistic_standardisation_at_10k_rows():
    # the MPyC program's global mean and 1/sd at the 10,000 rows (the standardisation
    # alone: the training takes minutes there), checked against numpy: a 1/N that SecFxp
    # cannot represent (1e-4 is 7 * 2^-16, +6.8%) made a variance negative and 1/sd diverge
    m = compare_mpyc.run_mpyc("logistic_stats", 10_000, 3, repeat=1)
    assert m["correct"] is True and m["wrong_elements"] == 0, m
    assert m["max_abs_error"] < 2.0**-8
