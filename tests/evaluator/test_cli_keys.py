"""``evaluator keys``, ``verify --pubkey`` and ``qr verify``: the device key on the command line."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from evaluator.cli import main
from evaluator.rules import ratelink
from sync.keys import DeviceKey
from sync.store import Store
from tests.sync.test_store import content

NOW = 1_795_000_000


def site(tmp_path: Path) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(
        f'[device]\nid = "pad-1"\n[storage]\npath = {json.dumps(str(tmp_path / "r.db"))}\n',
        encoding="utf-8",
    )
    return path


def test_keys_init_creates_once_and_show_prints_only_the_public_half(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = site(tmp_path)
    assert main(["keys", "init", "--config", str(config)]) == 0
    created = capsys.readouterr().out
    key_file = tmp_path / "device.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = DeviceKey.load(key_file)
    assert key.public.text in created and key.public.fingerprint in created
    secret = "".join(key_file.read_text().splitlines()[1:-1])
    assert secret[:16] not in created

    assert main(["keys", "init", "--config", str(config)]) == 2
    assert "never overwritten" in capsys.readouterr().err
    assert DeviceKey.load(key_file).public.raw == key.public.raw

    assert main(["keys", "show", "--key", str(key_file)]) == 0
    shown = capsys.readouterr().out
    assert f"public key:  {key.public.text}" in shown and f"key id:      {key.key_id}" in shown
    assert secret[:16] not in shown


def test_keys_show_without_a_key_says_how_to_make_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "show", "--config", str(site(tmp_path))]) == 2
    assert "evaluator keys init" in capsys.readouterr().err


def test_verify_checks_signatures_with_the_device_key_or_a_given_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = site(tmp_path)
    db = str(tmp_path / "r.db")
    key = DeviceKey.create(tmp_path / "device.key")
    other = DeviceKey.create(tmp_path / "other.key")
    with Store(tmp_path / "r.db", device_id="pad-1") as old:
        old.conn.execute("DELETE FROM meta WHERE key = 'epoch'")  # before epochs too: keys
        old.conn.commit()  # came first, so such a store has no epoch event to sign
        old.append_rating(content("S-0"))  # from before the key
    with Store(tmp_path / "r.db", device_id="pad-1", signer=key) as store:
        for i in range(1, 3):
            store.append_rating(content(f"S-{i}"))
    # The unsigned first record is a finding until the city's first signed seq is given.
    assert main(["verify", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "key file on this device" in out and f"2 by key id {key.key_id}" in out
    assert "UNSIGNED: 1 record(s) carry no signature (seq 1)" in out
    assert main(["verify", "--config", str(config), "--unsigned-before", "2"]) == 0
    assert "1 unsigned record(s) below seq 2 accepted" in capsys.readouterr().out
    assert main(["verify", "--db", db, "--pubkey", key.public.text, "--unsigned-before", "2"]) == 0
    capsys.readouterr()
    assert main(["verify", "--db", db, "--pubkey", other.public.text]) == 1
    refused = capsys.readouterr().out
    assert "BAD SIGNATURE: 2 record(s)" in refused and "seq 2, 3" in refused
    # A replaced key: both registered keys given, every record checks.
    assert (
        main(["verify", "--db", db, "--pubkey", other.public.text, "--pubkey", key.public.text,
              "--unsigned-before", "2"]) == 0
    )  # fmt: skip
    capsys.readouterr()
    # No key at all: the chain is checked, the signatures are not, and that is no OK.
    assert main(["verify", "--db", db]) == 1
    assert "NOT CHECKED: the signatures of 2 signed record(s)" in capsys.readouterr().out
    (tmp_path / "device.key").chmod(0o644)
    assert main(["verify", "--config", str(config)]) == 1
    assert "chmod 600" in capsys.readouterr().out


def test_qr_verify_accepts_a_genuine_link_and_names_each_refusal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = DeviceKey.create(tmp_path / "device.key")
    other = DeviceKey.create(tmp_path / "other.key")
    url, link = ratelink.make_link(
        "https://hcp.example.org/r?{query}", device_id="pad-1", serials=["S-1"],
        matter_code="M-1", clerk="A1023", now=NOW, key_id=key.key_id, sign=key.sign,
    )  # fmt: skip
    pub = key.public.text
    (tmp_path / "pub.txt").write_text(pub)
    assert (
        main(["qr", "verify", url, "--pubkey", str(tmp_path / "pub.txt"), "--now", str(NOW)]) == 0
    )
    assert "VALID: device pad-1, serials S-1" in capsys.readouterr().out
    cases = {
        "tampered": (url.replace("c=A1023", "c=A1024"), pub, NOW, None),
        "wrong_key": (url, other.public.text, NOW, None),
        "expired": (url, pub, NOW + ratelink.DEFAULT_EXPIRY_S, None),
        "replayed": (url, pub, NOW, link.short_code.lower()),
        "malformed": ("https://hcp.example.org/r?x=1", pub, NOW, None),
    }
    for reason, (checked, key_text, now, used) in cases.items():
        args = ["qr", "verify", checked, "--pubkey", key_text, "--now", str(now)]
        if used:
            (tmp_path / "used.txt").write_text(f"ZZZZ-ZZZZ\n{used}\n")
            args += ["--used", str(tmp_path / "used.txt")]
        assert main(args) == 1, reason
        assert capsys.readouterr().out.startswith(f"REFUSED: {reason}:"), reason


def test_qr_verify_with_a_bad_public_key_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["qr", "verify", "https://x/r?v=1", "--pubkey", "ssh-rsa AAAA"]) == 2
    assert "expected 'ed25519:<base64>'" in capsys.readouterr().err
