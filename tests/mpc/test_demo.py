import json

import pytest

from mpc.cli.main import main

KEYS = ("accuracy_secure", "accuracy_plain", "auc_secure", "auc_plain", "seconds",
        "bytes_per_party", "rounds", "aggregate")


def _check(out):
    for k in KEYS:
        assert k in out
    assert abs(out["accuracy_secure"] - out["accuracy_plain"]) < 0.01
    assert abs(out["auc_secure"] - out["auc_plain"]) < 0.01 and out["auc_secure"] > 0.8
    assert out["max_coef_diff"] < 0.05 and out["rounds"] > 0 and out["bytes_per_party"] > 0
    a = out["aggregate"]
    # epsilon 40 per job (tests): the noise is almost always 0, never more than 2 here
    assert a["epsilon"] == 40 and 0 < a["noise_std"] < 0.05 and a["within_noise"]
    k, sizes, plain = a["k"], a["group_sizes"], a["plain"]
    for g, v in a["by_group"].items():
        if sizes[g] <= k - 2 or plain[g] <= k - 2:
            assert v is None  # suppressed: too few transactions or too few flagged
        elif sizes[g] >= k + 2 and plain[g] >= k + 2:
            assert v is not None and abs(v - plain[g]) <= 2
    assert any(v is None for v in a["by_group"].values())
    assert any(v is not None for v in a["by_group"].values())
    assert all(abs(v - 360) < 1e-6 for v in a["budget_left"].values())  # 10 x 40 - 40


@pytest.mark.timeout(120)
def test_demo_json_secure_by_default(capsys):
    assert main(["demo", "--json", "--rows", "600", "--score-rows", "400", "--k-min", "20",
                 "--threshold", "0.35", "--epsilon", "40"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["preprocessing"] == "ot" and out["secure_preprocessing"] is True
    assert "INSECURE" not in captured.err
    _check(out)


@pytest.mark.timeout(120)
def test_demo_mqtt_insecure_dealer_says_so(capsys, mqtt_broker):
    assert main(["demo", "--json", "--rows", "400", "--score-rows", "300", "--k-min", "20",
                 "--threshold", "0.35", "--epsilon", "40",
                 "--transport", "mqtt", "--preprocessing", "shared_seed_dealer"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["preprocessing"] == "shared_seed_dealer" and out["secure_preprocessing"] is False
    assert "INSECURE" in captured.err
    _check(out)
    # issue 14: the demo's own mosquitto with the `smpc init --broker-auth` accounts and ACLs
    from mpc.cli.demo import mosquitto_binary

    if mosquitto_binary() is not None:
        assert out["broker_auth"] is True and out["broker"] != "mqtt://127.0.0.1:1883"
        assert "WITHOUT broker accounts" not in captured.err
    else:
        assert out["broker_auth"] is False and "WITHOUT broker accounts" in captured.err


def test_demo_private_broker_refuses_strangers(tmp_path):
    """The broker the MQTT demo starts (mpc.cli.demo.start_private_broker) with the files
    `smpc init --transport mqtt --broker-auth` writes: a node's account connects, an anonymous
    client and a wrong password do not."""
    import asyncio

    import aiomqtt

    from mpc.cli.demo import _free_port, mosquitto_binary, start_private_broker

    binary = mosquitto_binary()
    if binary is None:
        pytest.skip("mosquitto binary not installed")
    port = _free_port()
    assert main(["init", "--parties", "3", "--out", str(tmp_path), "--transport", "mqtt",
                 "--broker-auth", "--broker", f"mqtt://127.0.0.1:{port}"]) == 0
    pw = (tmp_path / "bank1.broker-password").read_text().strip()
    proc = start_private_broker(binary, tmp_path)

    async def connect(user, password):
        async with aiomqtt.Client("127.0.0.1", port, username=user, password=password,
                                  timeout=3):
            return True

    try:
        assert asyncio.run(connect("bank1", pw))
        for user, password in ((None, None), ("bank1", "wrong")):
            with pytest.raises(aiomqtt.MqttError):
                asyncio.run(connect(user, password))
    finally:
        proc.kill()
        proc.wait()


def test_demo_table(capsys):
    from mpc.cli import demo

    out = {"parties": 3, "scheme": "additive", "transport": "tcp", "rows": 10, "score_rows": 5,
           "preprocessing": "shared_seed_dealer", "secure_preprocessing": False,
           "accuracy_secure": 0.9, "accuracy_plain": 0.9, "auc_secure": 0.8, "auc_plain": 0.8,
           "seconds": 1.0, "rounds": 3, "bytes_per_party": 10,
           "aggregate": {"k": 2, "threshold": 0.5, "by_group": {"online": 1, "travel": None},
                         "plain": {"online": 1, "travel": 0},
                         "group_sizes": {"online": 3, "travel": 1}, "within_noise": True,
                         "epsilon": 1.0, "noise_std": 2.8, "budget_left": {"bank0": 9.0},
                         "seconds": 0.5, "rounds": 4, "bytes_per_party": 20}}
    demo.run = lambda args: out  # the table only
    try:
        assert demo.main(type("A", (), {"json": False})()) == 0
    finally:
        import importlib

        importlib.reload(demo)
    text = capsys.readouterr().out
    assert "INSECURE" in text and "suppressed" in text and "within 8 noise" in text
    assert "standard deviation 2.80" in text and "bank0 9" in text


@pytest.mark.timeout(120)
def test_demo_mqtt_without_mosquitto_says_it_has_no_broker_accounts(capsys, mqtt_broker,
                                                                     monkeypatch):
    from mpc.cli import demo

    monkeypatch.setattr(demo, "mosquitto_binary", lambda: None)
    assert main(["demo", "--json", "--rows", "400", "--score-rows", "300", "--k-min", "20",
                 "--threshold", "0.35", "--epsilon", "40", "--transport", "mqtt"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["broker"] == "mqtt://127.0.0.1:1883" and out["broker_auth"] is False
    assert "WITHOUT broker accounts or topic ACLs (no mosquitto binary was found" in captured.err
    _check(out)


def test_demo_defaults_flag_enough_to_release_counts():
    """With the demo's default data, epochs and threshold, the (plaintext) model flags at
    least k_min transactions in most categories, so the default fraud_aggregate releases
    counts. At threshold 0.5 it flagged 0-4 per category and the demo released nothing."""
    import argparse

    import numpy as np

    from mpc.cli.datasets import CATEGORIES, make_fraud
    from mpc.cli.demo import add_arguments
    from protocols.apps.ml.reference import fit_sgd_plain

    p = argparse.ArgumentParser()
    add_arguments(p)
    a = p.parse_args([])
    data = make_fraud(a.rows + a.score_rows, n_banks=a.parties, seed=a.seed)
    X = data.vertical_columns()
    train, test = np.arange(a.rows), np.arange(a.rows, a.rows + a.score_rows)
    coef, icpt = fit_sgd_plain(X[train], data.y[train], loss="logistic", epochs=a.epochs,
                               batch_size=128, lr=0.5, shuffle_seed=0)
    flags = X[test] @ np.asarray(coef) + float(icpt) > np.log(a.threshold / (1 - a.threshold))
    m = data.merchant[test]
    released = [g for g in range(len(CATEGORIES)) if flags[m == g].sum() >= a.k_min]
    assert len(released) > len(CATEGORIES) // 2
    caught = (flags & (data.y[test] == 1)).sum() / max(1, data.y[test].sum())
    assert caught > 0.8 and flags.mean() < 0.2  # a review queue, not "flag everything"


@pytest.mark.timeout(120)
def test_demo_rss3_honest_majority(capsys):
    assert main(["demo", "--json", "--rows", "600", "--score-rows", "400", "--k-min", "20",
                 "--threshold", "0.35", "--epsilon", "40", "--preprocessing", "rss3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["preprocessing"] == "rss3" and out["secure_preprocessing"] is True
    _check(out)


def test_demo_rss3_needs_three_additive_banks():
    for extra in (["--parties", "4"], ["--scheme", "shamir"]):
        with pytest.raises(SystemExit, match="rss3 needs --parties 3"):
            main(["demo", "--preprocessing", "rss3", *extra])
