"""``evaluator tls csr|ca|sign``: the round trip a pad and the city make, through the real CLI,
ending in a config that ``evaluator config check`` accepts."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509

from evaluator.cli import main
from sync import tlscerts


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(autouse=True)
def no_system_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALUATOR_CONFIG_DIR", "")  # only the --config files given


def pad_config(tmp_path: Path, device: str = "pad-a") -> Path:
    site = tmp_path / "evaluator.toml"
    site.write_text(
        f'[device]\nid = "{device}"\n[mqtt]\nurls = ["mqtts://mqtt.city.example"]\n'
        'tls_ca = "tls/ca.crt"\ntls_cert = "tls/device.crt"\ntls_key = "tls/device.key"\n',
        encoding="utf-8",
    )
    return site


def test_a_pad_and_the_city_make_a_working_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = pad_config(tmp_path)
    code, out, err = run(capsys, "tls", "csr", "--config", site)
    assert code == 0, err
    key, csr = tmp_path / "tls" / "device.key", tmp_path / "tls" / "device.csr"
    assert "created" in out and str(csr) in out and "CN pad-a" in out
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert "PRIVATE" not in out  # the key is never printed
    assert tlscerts.csr_common_name(csr.read_bytes()) == "pad-a"
    key_before = key.read_bytes()
    code, out, _err = run(capsys, "tls", "csr", "--config", site)  # again: the same key
    assert code == 0 and "kept" in out and key.read_bytes() == key_before

    city = tmp_path / "city"
    code, out, err = run(capsys, "tls", "ca", "--out", city)
    assert code == 0, err
    assert "keep it offline" in out
    code, out, err = run(
        capsys, "tls", "sign", csr, "--ca", city, "--out", tmp_path / "tls" / "device.crt"
    )
    assert code == 0, err
    assert "(pad, CN=pad-a)" in out
    (tmp_path / "tls" / "ca.crt").write_bytes((city / "ca.crt").read_bytes())
    code, out, err = run(capsys, "config", "check", site)
    assert code == 0, out + err


def test_the_broker_and_a_receiver_get_theirs_without_a_pad_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "tls", "ca", "--out", tmp_path / "ca")[0] == 0
    server = ["--server-name", "mqtt.city.example", "--server-name", "10.0.0.5"]
    for name, extra, kind in (("broker", server, "broker"), ("hub-1", ["--receiver"], "receiver")):
        csr, cert = tmp_path / f"{name}.csr", tmp_path / f"{name}.crt"
        code, _out, err = run(capsys, "tls", "csr", "--key", tmp_path / f"{name}.key", "--cn",
                              name, "--out", csr)  # fmt: skip
        assert code == 0, err
        code, out, err = run(capsys, "tls", "sign", csr, "--ca", tmp_path / "ca", "--out", cert,
                             *extra)  # fmt: skip
        assert code == 0, err
        assert f"({kind}, CN={name})" in out
    cert = tlscerts.load_certificate(tmp_path / "broker.crt")
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["mqtt.city.example"]
    assert tlscerts.cert_common_name((tmp_path / "hub-1.crt").read_bytes()) == "hub-1"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["tls", "csr", "--key", "k.key"], "--key needs --cn NAME and --out FILE"),
        (["tls", "csr", "--cn", "x"], "--cn and --out go with --key"),
        (
            ["tls", "sign", "missing.csr", "--ca", "nowhere", "--out", "x.crt"],
            "cannot read missing.csr",
        ),
        (["tls", "ca", "--out", "."], ""),  # made once...
        (["tls", "ca", "--out", "."], "already holds a CA"),  # ...never again
    ],
)
def test_mistakes_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    args: list[str], says: str,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    if says == "already holds a CA":
        assert run(capsys, "tls", "ca", "--out", ".")[0] == 0
    code, _out, err = run(capsys, *args)
    if not says:
        assert code == 0
        return
    assert code == 2
    assert err.startswith(f"evaluator tls {args[1]}: ") and says in err
    assert len(err.strip().splitlines()) == 1


def test_csr_says_which_keys_to_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "evaluator.toml"
    site.write_text('[device]\nid = "pad-a"\n', encoding="utf-8")
    code, _out, err = run(capsys, "tls", "csr", "--config", site)
    assert code == 2 and "set [mqtt] tls_key and tls_cert first" in err
    assert not list(tmp_path.glob("**/*.key"))


def test_the_city_does_not_sign_a_pad_as_a_receiver(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "tls", "ca", "--out", tmp_path / "ca")
    run(capsys, "tls", "csr", "--key", tmp_path / "k", "--cn", "hub-9", "--out", tmp_path / "r.csr")
    code, _out, err = run(capsys, "tls", "sign", tmp_path / "r.csr", "--ca", tmp_path / "ca",
                          "--out", tmp_path / "r.crt")  # fmt: skip
    assert code == 2 and "receiver's name" in err
    assert not (tmp_path / "r.crt").exists()


# --------------------------------------------------------------------------- issue 14: batches


def provisioned(tmp_path: Path, capsys: pytest.CaptureFixture[str], n: int = 3) -> Path:
    """``evaluator provision`` of ``n`` mqtts pads (pad-1 … pad-n) into ``tmp_path/out``."""
    sheet = tmp_path / "fleet.csv"
    rows = [f"pad-{i},{i}号窗口,440500,mqtts://mqtt.city.example:8883" for i in range(1, n + 1)]
    sheet.write_text("device_id,window,area_code,brokers\n" + "\n".join(rows) + "\n",
                     encoding="utf-8")  # fmt: skip
    out = tmp_path / "out"
    code, _out, err = run(capsys, "provision", sheet, "--out", out)
    assert code == 0, err
    return out


def test_the_whole_path_sheet_provision_city_signs_the_batch_config_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = provisioned(tmp_path, capsys)
    pad = out / "pad-2" / "evaluator.toml"
    # the provisioned file names every TLS file (issue 14: it named none, the check said OK)
    code, text, _err = run(capsys, "config", "check", pad)
    assert code == 2
    assert f"tls_cert {out / 'pad-2' / 'tls' / 'device.crt'} does not exist: the city signs " \
        "device.csr with `evaluator tls sign-batch" in text  # fmt: skip
    assert f"tls_ca {out / 'pad-2' / 'tls' / 'ca.crt'} does not exist" in text

    city = tmp_path / "city"
    assert run(capsys, "tls", "ca", "--out", city)[0] == 0
    code, text, err = run(capsys, "tls", "sign-batch", out, "--ca", city)
    assert code == 0, err
    assert text.count(": signed (") == 3 and text.splitlines()[-1].startswith("3 signed, 0 renewed")
    for i in (1, 2, 3):
        tls = out / f"pad-{i}" / "tls"
        assert (tls / "ca.crt").read_bytes() == (city / "ca.crt").read_bytes()
        cert = x509.load_pem_x509_certificate((tls / "device.crt").read_bytes())
        assert tlscerts.cert_common_name(cert.public_bytes(tlscerts.serialization.Encoding.PEM)) \
            == f"pad-{i}"  # fmt: skip
    code, text, err = run(capsys, "config", "check", pad)
    assert code == 0, text + err
    assert {e.cn for e in tlscerts.issued(city)} == {"pad-1", "pad-2", "pad-3"}

    # a re-run changes nothing (no new serial, no file rewritten)
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.glob("*/tls/*.crt")}
    code, text, _err = run(capsys, "tls", "sign-batch", out, "--ca", city)
    assert code == 0 and text.splitlines()[-1].startswith("0 signed, 0 renewed, 3 unchanged")
    assert before == {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.glob("*/tls/*.crt")}
    assert len(tlscerts.issued(city)) == 3


def test_a_request_whose_name_is_not_its_pads_is_refused_loudly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = provisioned(tmp_path, capsys)
    # pad-3's folder carries pad-1's request: signed, pad-1's name would go into pad-3's bundle
    (out / "pad-3" / "tls" / "device.csr").write_bytes(
        (out / "pad-1" / "tls" / "device.csr").read_bytes())  # fmt: skip
    city = tmp_path / "city"
    run(capsys, "tls", "ca", "--out", city)
    code, text, err = run(capsys, "tls", "sign-batch", out, "--ca", city)
    assert code == 1
    assert f"pad-3: refused (the request {out / 'pad-3' / 'tls' / 'device.csr'} is for CN " \
        "pad-1, but the folder is 'pad-3' and its [device] id 'pad-3': not signed" in err
    assert text.splitlines()[-1] == "2 signed, 0 renewed, 0 unchanged, 0 skipped, 1 refused"
    assert not (out / "pad-3" / "tls" / "device.crt").exists()
    assert {e.cn for e in tlscerts.issued(city)} == {"pad-1", "pad-2"}


def test_a_certificate_of_another_ca_or_near_its_end_is_signed_anew(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = provisioned(tmp_path, capsys, n=2)
    old, city = tmp_path / "old-ca", tmp_path / "city"
    run(capsys, "tls", "ca", "--out", old)
    run(capsys, "tls", "ca", "--out", city)
    assert run(capsys, "tls", "sign-batch", out, "--ca", old)[0] == 0
    code, text, _err = run(capsys, "tls", "sign-batch", out, "--ca", city, "--days", "30")
    assert code == 0 and "2 renewed" in text  # another CA's: the new CA signs, ca.crt replaced
    assert (out / "pad-1" / "tls" / "ca.crt").read_bytes() == (city / "ca.crt").read_bytes()
    code, text, _err = run(capsys, "tls", "sign-batch", out, "--ca", city)
    assert code == 0 and "2 renewed" in text  # 30 days left: within RENEW_BEFORE


def test_revoke_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = provisioned(tmp_path, capsys, n=2)
    city = tmp_path / "city"
    run(capsys, "tls", "ca", "--out", city)
    run(capsys, "tls", "sign-batch", out, "--ca", city)
    code, text, _err = run(capsys, "tls", "revoke", "pad-2", "--ca", city)
    assert code == 0
    serial = x509.load_pem_x509_certificate(
        (out / "pad-2" / "tls" / "device.crt").read_bytes()).serial_number  # fmt: skip
    assert f"revoked: serial {serial:X} pad-2" in text
    assert f"revocation list: {city / 'crl.pem'}" in text and "systemctl reload mosquitto" in text
    crl = x509.load_pem_x509_crl((city / "crl.pem").read_bytes())
    assert [r.serial_number for r in crl] == [serial]
    # a revoked pad's key is never signed again (a stolen pad would be let back in)
    code, text, err = run(capsys, "tls", "sign-batch", out, "--ca", city)
    assert code == 1 and "pad-1: unchanged" in text
    assert f"pad-2: refused (this request's key had certificate {serial:X} (pad-2), revoked " in err
    assert "never signed again; the pad needs a new TLS key" in err
    # the pad's new key (the old one moved away, provision makes a new key and request)
    (out / "pad-2" / "tls" / "device.key").unlink()
    provisioned(tmp_path, capsys, n=2)
    code, text, err = run(capsys, "tls", "sign-batch", out, "--ca", city)
    assert code == 0 and "pad-2: renewed" in text, err
    code, _text, err = run(capsys, "tls", "revoke", "pad-9", "--ca", city)
    assert code == 2 and "never signed a certificate for 'pad-9'" in err


def test_a_bundle_copied_with_its_key_is_refused_for_the_second_pad(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """pad-2's folder was made by copying pad-1's (its key with it) and asks for pad-2: both
    certificates on one key would make pad-1's holder pad-2 as well."""
    out = provisioned(tmp_path, capsys, n=2)
    key = tlscerts.load_tls_key(out / "pad-1" / "tls" / "device.key")
    (out / "pad-2" / "tls" / "device.csr").write_bytes(tlscerts.make_csr(key, "pad-2"))
    city = tmp_path / "city"
    run(capsys, "tls", "ca", "--out", city)
    code, text, err = run(capsys, "tls", "sign-batch", out, "--ca", city)
    assert code == 1
    assert "pad-1: signed" in text
    assert "pad-2: refused (this request's key already has certificate " in err
    assert "for 'pad-1': not signed for 'pad-2' (one key, one name" in err
    assert not (out / "pad-2" / "tls" / "device.crt").exists()
    assert [e.cn for e in tlscerts.issued(city)] == ["pad-1"]


def test_the_batch_never_writes_outside_a_pads_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bundle is a folder someone handed over: a tls_ca with '..' (or an absolute path
    with '..') or a tls folder that is a symlink must not have the city's batch overwrite a
    file elsewhere with ca.crt or a certificate. A tls_ca outside the bundle is the pad's (a
    template's system path): the certificate is signed, ca.crt not written, and that is said."""
    out = provisioned(tmp_path, capsys, n=4)
    victim = tmp_path / "victim.txt"
    victim.write_text("kept\n", encoding="utf-8")
    for pad, value in (("pad-1", "../../victim.txt"),
                       ("pad-2", "/etc/evaluator/../../" + str(victim).lstrip("/")),
                       ("pad-4", "/etc/ssl/certs/city-ca.pem")):  # fmt: skip
        site = out / pad / "evaluator.toml"
        text = site.read_text(encoding="utf-8")
        assert 'tls_ca = "tls/ca.crt"' in text
        site.write_text(text.replace('tls_ca = "tls/ca.crt"', f'tls_ca = "{value}"'),
                        encoding="utf-8")  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    (out / "pad-3" / "tls").rename(elsewhere)
    (out / "pad-3" / "tls").symlink_to(elsewhere)
    city = tmp_path / "city"
    run(capsys, "tls", "ca", "--out", city)
    code, text, err = run(capsys, "tls", "sign-batch", out, "--ca", city)
    assert code == 1
    assert victim.read_text(encoding="utf-8") == "kept\n"
    assert not (elsewhere / "device.crt").exists() and not (elsewhere / "ca.crt").exists()
    assert f"pad-3: refused (tls/device.crt leads out of the pad's folder {out / 'pad-3'} " \
        f"(a '..' or a symlink to {elsewhere / 'device.crt'})" in err  # fmt: skip
    for pad, value in (("pad-1", "../../victim.txt"), ("pad-4", "/etc/ssl/certs/city-ca.pem")):
        assert f"{pad}: signed (" in text
        assert f"; tls_ca {value} is outside the bundle: ca.crt not put there, the pad must " \
            "have this CA's ca.crt at that path)" in text  # fmt: skip
        assert (out / pad / "tls" / "device.crt").exists()
        assert not (out / pad / "tls" / "ca.crt").exists()
    assert "pad-2: signed (" in text
    assert text.splitlines()[-1] == "3 signed, 0 renewed, 0 unchanged, 0 skipped, 1 refused"
    assert sorted(e.cn for e in tlscerts.issued(city)) == ["pad-1", "pad-2", "pad-4"]
