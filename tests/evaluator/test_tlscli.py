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
