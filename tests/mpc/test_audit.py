import sqlite3

import pytest

from mpc.cli.main import main
from mpc.node.audit import AuditLog, AuditLogError, verify


def _log(tmp_path, k=3):
    path = tmp_path / "audit.sqlite"
    with AuditLog(path) as log:
        for i in range(k):
            log.append(job_id=f"job{i}", manifest_hash="ab" * 32, decision="accepted",
                       peers=[0, 1, 2], rounds=10 + i, bytes=1000 * i, outcome="released")
    return path


def test_chain_verifies_and_cli_says_ok(tmp_path, capsys):
    path = _log(tmp_path)
    res = verify(path)
    assert res.ok and res.entries == 3
    assert main(["audit", "verify", str(path)]) == 0
    assert "ok" in capsys.readouterr().out


def test_append_only_through_sqlite(tmp_path):
    path = _log(tmp_path)
    log = AuditLog(path)
    with pytest.raises(sqlite3.DatabaseError):
        log.db.execute("UPDATE audit SET entry = '{}' WHERE seq = 1")
    with pytest.raises(sqlite3.DatabaseError):
        log.db.execute("DELETE FROM audit WHERE seq = 2")
    log.close()


@pytest.mark.parametrize("tamper", ["edit", "delete", "swap"])
def test_tampering_with_the_file_is_detected(tmp_path, tamper, capsys):
    path = _log(tmp_path, 4)
    db = sqlite3.connect(path)
    db.executescript("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;")
    if tamper == "edit":
        db.execute("UPDATE audit SET entry = replace(entry, '\"rounds\":11', '\"rounds\":99') WHERE seq = 2")
    elif tamper == "delete":
        db.execute("DELETE FROM audit WHERE seq = 2")
    else:
        a, b = db.execute("SELECT entry FROM audit WHERE seq IN (2, 3) ORDER BY seq").fetchall()
        db.execute("UPDATE audit SET entry = ? WHERE seq = 2", b)
        db.execute("UPDATE audit SET entry = ? WHERE seq = 3", a)
    db.commit()
    db.close()
    res = verify(path)
    assert not res.ok and res.first_bad == 2
    assert main(["audit", "verify", str(path)]) == 1
    assert "first bad entry: 2" in capsys.readouterr().err


def test_entries_hold_no_values(tmp_path):
    with AuditLog(tmp_path / "a.sqlite") as log:
        with pytest.raises(AuditLogError):
            log.append(job_id="j", result=[1.5, 2.5])
        with pytest.raises(AuditLogError):
            log.append(job_id="j", peers=[0.5])
        with pytest.raises(AuditLogError):
            log.append(job_id="x" * 600)
