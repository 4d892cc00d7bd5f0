"""``config check`` run as root: could the service's user read what the pad needs (issue 14)?

The kernel decides (``test -r`` run as the user); owner, group and mode bits (and every
folder's x bit, the symlink's and its target's) say why.  The tests build a real tree with real
modes, owners and ACLs and ask about a real unprivileged user of the machine (``nobody``)
through ``service_user``.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from evaluator import config as cfg
from evaluator.config import check_config

USER = "nobody"


@pytest.fixture
def tree() -> Iterator[Path]:
    """A world-enterable folder (the pytest temp root is 0700: nobody enters it)."""
    folder = Path(tempfile.mkdtemp(prefix="evaluator-svc-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def pad(tree: Path) -> tuple[Path, Path]:
    """``etc/evaluator.toml`` (0644) naming ``var/device.key`` (0600, root's)."""
    (tree / "etc").mkdir(mode=0o755)
    (tree / "var").mkdir(mode=0o755)
    key = tree / "var" / "device.key"
    key.write_bytes(b"not read here")
    key.chmod(0o600)
    site = tree / "etc" / "evaluator.toml"
    site.write_text(f'[device]\nid = "pad-1"\nkey_file = "{key}"\n[storage]\n'
                    f'path = "{tree}/var/ratings.db"\n', encoding="utf-8")  # fmt: skip
    site.chmod(0o644)
    return site, key


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="owners can be given only by root")


@needs_root
def test_a_key_only_root_reads_is_named_with_mode_and_owner(tree: Path) -> None:
    site, key = pad(tree)
    found = [str(p) for p in check_config([site], service_user=USER)]
    assert len(found) == 1, found
    assert "device.key_file" in found[0]
    assert f"the device key: user 'nobody' cannot read {key} (mode -rw-------, owner root:" \
        in found[0]
    os.chown(key, pwd.getpwnam(USER).pw_uid, -1)
    assert check_config([site], service_user=USER) == []


@needs_root
def test_a_folder_the_user_cannot_enter_is_named(tree: Path) -> None:
    site, key = pad(tree)
    os.chown(key, pwd.getpwnam(USER).pw_uid, -1)
    (tree / "var").chmod(0o750)  # root:root, nobody is "other": no x
    found = [str(p) for p in check_config([site], service_user=USER)]
    assert len(found) == 1, found
    assert f"user 'nobody' cannot enter the folder {tree / 'var'} (mode drwxr-x---" in found[0]
    (tree / "etc").chmod(0o700)  # the config file itself is out of reach too
    found = [str(p) for p in check_config([site], service_user=USER)]
    assert any(line.startswith(f"{site}: the configuration file: user 'nobody' cannot enter")
               for line in found), found  # fmt: skip


@needs_root
def test_the_group_bits_count_for_a_member(tree: Path) -> None:
    site, key = pad(tree)
    os.chown(key, 0, pwd.getpwnam(USER).pw_gid)
    key.chmod(0o640)
    assert check_config([site], service_user=USER) == []
    key.chmod(0o604)  # group may not, others may: the kernel takes the group class
    assert "cannot read" in str(check_config([site], service_user=USER)[0])


@needs_root
def test_tls_files_are_checked_for_the_user(tree: Path) -> None:
    from sync import tlscerts

    site, key = pad(tree)
    os.chown(key, pwd.getpwnam(USER).pw_uid, -1)
    tls = tree / "etc" / "tls"
    ca = tlscerts.make_ca(tree / "ca")
    tls.mkdir(mode=0o755)
    (tls / "ca.crt").write_bytes(ca.cert_path.read_bytes())
    tls_key = tlscerts.create_tls_key(tls / "device.key")  # 0600 root: the pad cannot read it
    (tls / "device.crt").write_bytes(tlscerts.sign_csr(tlscerts.make_csr(tls_key, "pad-1"), ca))
    with site.open("a", encoding="utf-8") as f:
        f.write('[mqtt]\nurls = ["mqtts://broker"]\ntls_ca = "tls/ca.crt"\n'
                'tls_cert = "tls/device.crt"\ntls_key = "tls/device.key"\n')  # fmt: skip
    found = [str(p) for p in check_config([site], service_user=USER)]
    assert len(found) == 1, found
    assert f'mqtt.tls_key = "tls/device.key": the pad\'s TLS key: user \'nobody\' cannot read ' \
           f"{tls / 'device.key'}" in found[0]  # fmt: skip


def test_a_user_that_does_not_exist_is_said_once_and_skipped(
    tree: Path, caplog: pytest.LogCaptureFixture
) -> None:
    site, _key = pad(tree)
    with caplog.at_level(logging.WARNING, logger="evaluator.config"):
        assert check_config([site], service_user="no-such-user-14") == []
        assert check_config([site], service_user="no-such-user-14") == []
    told = [r.getMessage() for r in caplog.records if "no-such-user-14" in r.getMessage()]
    assert len(told) == 1 and "is not checked" in told[0], told


def test_only_the_config_check_command_as_root_checks_the_service_user(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``sudo evaluator config check`` speaks for the pad's user; nothing else does: a pad run
    by hand as root re-reading its files on SIGHUP (evaluator/reload.py) or provision must not
    refuse a file over another user's access (found by review)."""
    from evaluator.cli import cmd_config_check

    site, _key = pad(tree)
    asked: list[str] = []
    monkeypatch.setattr(cfg, "_account", lambda user: asked.append(user))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    check_config([site])  # what reload and provision call
    assert asked == []
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    cmd_config_check([site])
    assert asked == []
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    cmd_config_check([site])
    assert asked == [cfg.SERVICE_USER] == ["evaluator"]


def test_the_service_user_is_the_units() -> None:
    from tests.support import REPO

    unit = (REPO / "systemd" / "evaluator.service").read_text(encoding="utf-8")
    assert f"\nUser={cfg.SERVICE_USER}\n" in unit


@needs_root
def test_a_symlink_into_a_folder_the_user_cannot_enter_is_named(tree: Path) -> None:
    """The key file is a symlink into root's 0700 folder: the link's own folders are open, the
    target's are not, and the service could not read it (it said nothing)."""
    site, key = pad(tree)
    private = tree / "private"
    private.mkdir(mode=0o700)
    real = private / "device.key"
    key.rename(real)
    real.chmod(0o644)
    key.symlink_to(real)
    found = [str(p) for p in check_config([site], service_user=USER)]
    assert len(found) == 1, found
    assert f"user 'nobody' cannot enter the folder {private} (on the way to {real}, where " \
        f"{key} leads) (mode drwx------" in found[0]  # fmt: skip
    private.chmod(0o711)
    assert check_config([site], service_user=USER) == []


def _acl(path: Path, user_perm: int, other: int = 0) -> None:
    """A POSIX access ACL on ``path`` (what ``setfacl -m u:nobody:…`` writes): the owner rw,
    user nobody ``user_perm``, the owning group nothing, others ``other``."""
    import struct

    undefined = 0xFFFFFFFF
    entries = [(0x01, 6, undefined), (0x02, user_perm, pwd.getpwnam(USER).pw_uid),
               (0x04, 0, undefined), (0x10, 7, undefined), (0x20, other, undefined)]  # fmt: skip
    data = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)
    os.setxattr(path, "system.posix_acl_access", data)


@needs_root
def test_an_acl_counts_as_the_kernel_takes_it(tree: Path) -> None:
    """The service user may read a 0600 root file through an ACL (`setfacl -m u:evaluator:r`):
    no problem (it told the technician to chown it). An ACL that denies a world-readable file:
    a problem naming getfacl (it said OK)."""
    site, key = pad(tree)
    _acl(key, 4)
    assert check_config([site], service_user=USER) == []
    _acl(key, 0, other=4)
    assert oct(key.stat().st_mode & 0o7) == "0o4"  # others may read by the mode bits
    found = [str(p) for p in check_config([site], service_user=USER)]
    assert len(found) == 1, found
    assert f"user 'nobody' cannot read {key}, though its mode and owner would let it: an ACL " \
        f"or a security module refuses it (getfacl {key})" in found[0]  # fmt: skip
