"""``taskloom keys create|list|revoke`` on a temporary SQLite file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from knowledge import Database, audit_log, authenticate
from workflow._cli import main


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'keys.db'}"


def keys(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["keys", *args])
    out, err = capsys.readouterr()
    return status, out, err


def create(capsys: pytest.CaptureFixture[str], url: str, name: str, role: str) -> str:
    status, out, err = keys(capsys, "create", "--name", name, "--role", role, "--db", url)
    assert status == 0, err
    return out.strip()


def test_create_prints_a_token_once_that_authenticates(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = keys(capsys, "create", "--name", "alice", "--role", "labeler", "--db", url)

    assert status == 0
    token = out.strip()
    assert token.startswith("tlk_")
    assert "\n" not in token
    assert "will not be shown again" in err
    with Database(url) as db, db.session() as session:
        key = authenticate(session, token)
        assert key is not None
        assert (key.name, key.role) == ("alice", "labeler")
        assert key.created_by.startswith("cli")
        assert f"created key {key.id} 'alice' (labeler)" in err
        (entry,) = audit_log(session, entity="api_keys")
        assert (entry.action, entry.entity_id) == ("api_key.create", key.id)


def test_create_as_json_gives_the_key_and_its_secret(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = keys(capsys, "create", "--name", "ci", "--role", "admin", "--db", url,
                            "--json")  # fmt: skip
    assert status == 0
    body = json.loads(out)
    assert set(body) == {"key", "secret"}
    assert set(body["key"]) == {"id", "name", "role", "created_by", "created_at", "revoked_at"}
    assert (body["key"]["name"], body["key"]["role"]) == ("ci", "admin")
    assert body["secret"].startswith(f"tlk_{body['key']['id']}_")
    assert "will not be shown again" in err


def test_list_shows_keys_but_never_their_secrets(
    url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    status, out, _ = keys(capsys, "list", "--db", url)
    assert (status, out.strip()) == (0, "no API keys yet; create one with 'taskloom keys "
                                        "create --name NAME --role ROLE'")  # fmt: skip

    tokens = [create(capsys, url, "alice", "viewer"), create(capsys, url, "bob", "operator")]
    monkeypatch.setenv("TASKLOOM_DATABASE_URL", url)  # --db defaults to it
    status, out, _ = keys(capsys, "list")
    assert status == 0
    header, *rows = out.splitlines()
    assert header.split() == ["ID", "NAME", "ROLE", "CREATED", "BY", "CREATED", "REVOKED"]
    assert [row.split()[1:3] for row in rows] == [["alice", "viewer"], ["bob", "operator"]]
    assert [row.split()[0] for row in rows] == [t.split("_")[1] for t in tokens]

    status, listed, _ = keys(capsys, "list", "--json")
    assert status == 0
    assert [k["name"] for k in json.loads(listed)["keys"]] == ["alice", "bob"]
    for token in tokens:
        secret = token.split("_", 2)[2]
        assert secret not in out
        assert secret not in listed
    assert "sha256" not in out + listed


def test_revoke_stops_a_key_and_says_so_twice(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    token = create(capsys, url, "alice", "viewer")
    key_id = token.split("_")[1]

    status, out, _ = keys(capsys, "revoke", key_id, "--db", url)
    assert status == 0
    assert out.startswith(f"revoked key {key_id} 'alice' at ")
    assert "already" not in out
    status, out, _ = keys(capsys, "revoke", key_id, "--db", url)
    assert (status, out.strip().endswith("(it was already revoked)")) == (0, True)

    with Database(url) as db, db.session() as session:
        assert authenticate(session, token) is None
    status, out, _ = keys(capsys, "list", "--db", url)
    assert out.splitlines()[1].split()[-1] != "-"  # the REVOKED column has a time


def test_an_unknown_role_is_bad_usage(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["keys", "create", "--name", "x", "--role", "root", "--db", url])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'root'" in err
    assert "viewer" in err
    assert "admin" in err


def test_an_empty_name_is_bad_usage(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = keys(capsys, "create", "--name", "", "--role", "viewer", "--db", url)
    assert (status, out) == (2, "")
    assert "name must be 1 to 200 characters" in err


def test_revoking_an_unknown_key_fails_with_status_1(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = keys(capsys, "revoke", "0123456789ab", "--db", url)
    assert status == 1
    assert "There is no API key '0123456789ab'" in err
    assert "Traceback" not in err
