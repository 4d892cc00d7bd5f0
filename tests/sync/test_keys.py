"""``sync.keys``: the device's Ed25519 key, created owner-only, never shown, never overwritten."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from sync.keys import DeviceKey, DeviceKeyError, PublicKey, key_id_of


def test_a_created_key_is_owner_only_and_signs_what_its_public_key_checks(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "device.key"
    old = os.umask(0)  # the worst umask: the file must still be 0600
    try:
        key = DeviceKey.create(path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    signature = key.sign(b"record hash")
    assert len(signature) == 64
    assert key.public.check(b"record hash", signature)
    assert not key.public.check(b"record hasH", signature)
    again = DeviceKey.load(path)
    assert again.public.raw == key.public.raw
    assert again.key_id == key_id_of(key.public.raw) == key.public.fingerprint[:8]


def test_the_key_never_shows_in_repr_or_str(tmp_path: Path) -> None:
    key = DeviceKey.create(tmp_path / "device.key")
    secret = (tmp_path / "device.key").read_text()
    body = "".join(secret.splitlines()[1:-1])
    for shown in (repr(key), str(key), repr(key.public), key.public.text):
        assert body not in shown and body[:20] not in shown
    assert key.public.fingerprint in repr(key)


def test_an_existing_key_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "device.key"
    first = DeviceKey.create(path)
    with pytest.raises(DeviceKeyError, match="never overwritten"):
        DeviceKey.create(path)
    assert DeviceKey.load(path).public.raw == first.public.raw
    again, created = DeviceKey.load_or_create(path)
    assert not created and again.public.raw == first.public.raw


def test_load_or_create_creates_only_when_there_is_none(tmp_path: Path) -> None:
    key, created = DeviceKey.load_or_create(tmp_path / "device.key")
    assert created and key.path.is_file()
    (tmp_path / "bad.key").write_text("not a key")
    os.chmod(tmp_path / "bad.key", 0o600)
    with pytest.raises(DeviceKeyError, match="not a device key"):
        DeviceKey.load_or_create(tmp_path / "bad.key")  # a broken key is not replaced
    assert (tmp_path / "bad.key").read_text() == "not a key"


def test_a_key_readable_by_others_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "device.key"
    DeviceKey.create(path)
    os.chmod(path, 0o644)
    with pytest.raises(DeviceKeyError, match="chmod 600"):
        DeviceKey.load(path)


def test_a_missing_key_says_how_to_create_it(tmp_path: Path) -> None:
    with pytest.raises(DeviceKeyError, match="evaluator keys init"):
        DeviceKey.load(tmp_path / "absent.key")


def test_the_public_key_round_trips_as_text_pem_and_file(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    key = DeviceKey.create(tmp_path / "device.key")
    assert PublicKey.parse(key.public.text).raw == key.public.raw
    pem = key._private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert PublicKey.parse(pem.decode()).raw == key.public.raw
    (tmp_path / "pub.txt").write_text(key.public.text + "\n")
    assert PublicKey.parse(str(tmp_path / "pub.txt")).raw == key.public.raw
    for bad in ("ed25519:AAAA", "ed25519:***", "ssh-rsa AAAA", ""):
        with pytest.raises(DeviceKeyError):
            PublicKey.parse(bad)


def test_creation_leaves_no_temporary_file_and_refuses_a_dangling_symlink(tmp_path: Path) -> None:
    DeviceKey.create(tmp_path / "device.key")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["device.key"]
    (tmp_path / "link.key").symlink_to(tmp_path / "nowhere")
    with pytest.raises(DeviceKeyError, match="not a key file"):
        DeviceKey.load_or_create(tmp_path / "link.key")
    assert not (tmp_path / "nowhere").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["device.key", "link.key"]


def test_a_huge_or_special_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    big = tmp_path / "big.key"
    big.write_bytes(b"-----BEGIN PRIVATE KEY-----\n" + b"A" * 100_000)
    os.chmod(big, 0o600)
    with pytest.raises(DeviceKeyError, match="not a device key"):
        DeviceKey.load(big)
    with pytest.raises(DeviceKeyError, match="not a regular file"):
        DeviceKey.load(tmp_path)  # a directory
