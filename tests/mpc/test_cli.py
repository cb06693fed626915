import json
import os
import stat

import pytest

from mpc.cli.main import main


@pytest.mark.parametrize("scheme,transport", [("additive", "memory"), ("shamir", "tcp")])
def test_example_json_is_correct(capsys, scheme, transport):
    assert main(["example", "--json", "--scheme", scheme, "--transport", transport]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["correct"] is True and out["revealed_total"] == out["plaintext_total"]
    assert out["rounds"] == 5


def test_keygen_writes_0600_and_refuses_overwrite(tmp_path, capsys):
    key = tmp_path / "bank.key"
    assert main(["keygen", "--out", str(key), "--public-out", str(tmp_path / "bank.pub")]) == 0
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert (tmp_path / "bank.pub").read_text().strip() == printed
    assert main(["keygen", "--out", str(key)]) == 2
    assert "refusing" in capsys.readouterr().err
