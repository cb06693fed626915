"""Key files and public-key text (T19: key files mode 0600; T10: low-order keys refused)."""

import os

import pytest

from network.errors import KeyFileError, KeyFormatError
from network.keys import (
    generate_keypair,
    load_private_key,
    parse_public_key,
    public_key,
    public_key_text,
    save_private_key,
)


def test_roundtrip_and_mode(tmp_path):
    sk, pk = generate_keypair()
    assert public_key(sk) == pk
    path = tmp_path / "party.key"
    save_private_key(path, sk)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert load_private_key(path) == sk
    assert parse_public_key(public_key_text(pk)) == pk
    assert parse_public_key(pk.hex()) == pk


def test_refuses_overwrite(tmp_path):
    sk, _ = generate_keypair()
    path = tmp_path / "k"
    save_private_key(path, sk)
    with pytest.raises(KeyFileError):
        save_private_key(path, sk)
    os.chmod(path, 0o644)
    save_private_key(path, sk, overwrite=True)
    assert os.stat(path).st_mode & 0o777 == 0o600


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o610, 0o601])
def test_refuses_group_or_world_access(tmp_path, mode):
    sk, _ = generate_keypair()
    path = tmp_path / "k"
    save_private_key(path, sk)
    os.chmod(path, mode)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_private_key(path)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(KeyFileError):
        load_private_key(tmp_path / "absent")
    bad = tmp_path / "bad"
    fd = os.open(bad, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"not hex\n")
    os.close(fd)
    with pytest.raises(KeyFormatError):
        load_private_key(bad)


@pytest.mark.parametrize(
    "text",
    ["", "x25519:", "x25519:zz" + "00" * 31, "00" * 31, "00" * 33, "00" * 32, "01" + "00" * 31],
)
def test_bad_public_keys(text):
    with pytest.raises(KeyFormatError):
        parse_public_key(text)
