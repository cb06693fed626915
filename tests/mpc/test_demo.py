import json

import pytest

from mpc.cli import main


@pytest.mark.timeout(120)
@pytest.mark.parametrize("scheme,transport", [("additive", "tcp")])
def test_demo_json_matches_plaintext(capsys, scheme, transport):
    assert main(["demo", "--json", "--rows", "150", "--epochs", "2", "--scheme", scheme,
                 "--transport", transport]) == 0
    out = json.loads(capsys.readouterr().out)
    for k in ("accuracy_secure", "accuracy_plain", "auc_secure", "auc_plain", "seconds",
              "bytes_per_party", "rounds"):
        assert k in out
    assert abs(out["accuracy_secure"] - out["accuracy_plain"]) < 0.02
    assert abs(out["auc_secure"] - out["auc_plain"]) < 0.02 and out["auc_secure"] > 0.6
    assert out["max_coef_diff"] < 0.05
    assert out["fraud_cases"] == out["fraud_cases_plain"] and out["transactions"] == 450
    assert out["rounds"] > 0 and out["bytes_per_party"] > 0


def test_demo_mqtt(capsys, mqtt_broker):
    assert main(["demo", "--json", "--rows", "100", "--epochs", "1",
                 "--transport", "mqtt"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["fraud_cases"] == out["fraud_cases_plain"]
