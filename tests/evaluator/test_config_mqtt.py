"""``[mqtt] urls``, ``protocol`` and ``tls_*``: the broker URLs, the MQTT version, and the TLS
files of a pad that talks to a city broker over TLS with its own certificate.

Real certificates made by :mod:`sync.tlscerts` in a temporary folder; the files are checked the
way ``config check`` checks them (exist, readable, PEM, key owner-only, certificate made out to
the device id and for this key).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from evaluator.config import check_config, load_config
from evaluator.rules.errors import ConfigError
from sync import tlscerts

DEVICE = "pad-a"


def site(tmp_path: Path, mqtt: str, *, device: str = DEVICE) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(f'[device]\nid = "{device}"\n[mqtt]\n{mqtt}\n', encoding="utf-8")
    return path


def problems(tmp_path: Path, mqtt: str, **kwargs: str) -> list[str]:
    return [str(p) for p in check_config([site(tmp_path, mqtt, **kwargs)])]


@pytest.fixture
def tls(tmp_path: Path) -> Path:
    """``tls/ca.crt``, ``tls/device.key`` and ``tls/device.crt`` for pad-a, beside the config."""
    folder = tmp_path / "tls"
    ca = tlscerts.make_ca(tmp_path / "city-ca")
    (folder).mkdir()
    (folder / "ca.crt").write_bytes(ca.cert_path.read_bytes())
    key = tlscerts.create_tls_key(folder / "device.key")
    (folder / "device.crt").write_bytes(tlscerts.sign_csr(tlscerts.make_csr(key, DEVICE), ca))
    return folder


TLS = 'tls_ca = "tls/ca.crt"\ntls_cert = "tls/device.crt"\ntls_key = "tls/device.key"\n'
URLS = 'urls = ["mqtts://mqtt1.city.example", "mqtts://mqtt2.city.example:8884"]\n'


def test_the_defaults_are_the_host_and_port_over_mqtt_5_without_tls(tmp_path: Path) -> None:
    mqtt = load_config([site(tmp_path, "")]).mqtt
    assert (mqtt.urls, mqtt.protocol) == ((), "5")
    assert (mqtt.tls_ca, mqtt.tls_cert, mqtt.tls_key) == (None, None, None)


def test_a_tls_pad_with_its_certificate_is_clean(tmp_path: Path, tls: Path) -> None:
    path = site(tmp_path, URLS + TLS + 'protocol = "3.1.1"')
    assert check_config([path]) == []
    mqtt = load_config([path]).mqtt
    assert mqtt.urls == ("mqtts://mqtt1.city.example", "mqtts://mqtt2.city.example:8884")
    assert mqtt.protocol == "3.1.1"
    # relative to the file that set them, like every path
    assert (mqtt.tls_ca, mqtt.tls_cert, mqtt.tls_key) == (
        tls / "ca.crt", tls / "device.crt", tls / "device.key",
    )  # fmt: skip


def test_plain_urls_need_no_tls(tmp_path: Path) -> None:
    assert problems(tmp_path, 'urls = ["mqtt://10.0.0.5", "mqtt://[::1]:1884"]') == []


@pytest.mark.parametrize(
    ("value", "says", "hint"),
    [
        ('["http://broker"]', "expected mqtt://host:port or mqtts://host:port", ""),
        ('["broker.city"]', "expected mqtt://host:port", "did you mean 'mqtts://broker.city'?"),
        ('["mqtt://"]', "names no host", ""),
        ('["mqtt://h:0"]', "port 0", ""),
        ('["mqtt://h:70000"]', "Port out of range", ""),
        ('["mqtt://h:x"]', "mqtt://h:x", ""),
        ('["mqtt://user:pw@h"]', "user name and password in their own keys", ""),
        ('["mqtt://h/topic"]', "no path, query or fragment", ""),
        ('["mqtt://h?x=1"]', "no path, query or fragment", ""),
        ('"mqtts://h"', "expected a list of strings", 'did you mean ["mqtts://h"]?'),
        ("[1883]", "expected a list of strings", ""),
    ],
)
def test_a_bad_url_is_named_with_the_fix(tmp_path: Path, value: str, says: str, hint: str) -> None:
    (line,) = problems(tmp_path, f"urls = {value}")
    assert "site.toml:4: mqtt.urls = " in line
    assert says in line
    assert hint in line


@pytest.mark.parametrize(
    ("value", "hint"), [('"4"', "one of 5, 3.1.1"), ("5", 'did you mean "5"?')]
)
def test_protocol_is_5_or_3_1_1(tmp_path: Path, value: str, hint: str) -> None:
    (line,) = problems(tmp_path, f"protocol = {value}")
    assert "mqtt.protocol" in line and hint in line


def test_mqtts_needs_the_city_ca(tmp_path: Path) -> None:
    (line,) = problems(tmp_path, URLS)
    assert "site.toml:4: mqtt.tls_ca: required when a URL is mqtts://" in line
    assert 'add tls_ca = "tls/ca.crt"' in line
    with pytest.raises(ConfigError, match="tls_ca"):
        load_config([site(tmp_path, URLS)])


def test_a_client_certificate_needs_its_key_and_the_key_its_certificate(
    tmp_path: Path, tls: Path
) -> None:
    (line,) = problems(tmp_path, URLS + 'tls_ca = "tls/ca.crt"\ntls_cert = "tls/device.crt"')
    assert "mqtt.tls_cert" in line and "set without tls_key" in line and "evaluator tls csr" in line
    (line,) = problems(tmp_path, URLS + 'tls_ca = "tls/ca.crt"\ntls_key = "tls/device.key"')
    # a key's PATH is shown (issue 14: it was masked as a secret's value, so the fix could not
    # name the file)
    assert 'mqtt.tls_key = "tls/device.key": set without tls_cert' in line


def test_tls_files_without_an_mqtts_url_are_a_mistake(tmp_path: Path, tls: Path) -> None:
    (line,) = problems(tmp_path, 'urls = ["mqtt://broker"]\n' + TLS)
    assert "mqtt.tls_ca" in line and "the pad would connect without TLS" in line
    assert 'urls = ["mqtts://<broker>:8883"]' in line
    (line,) = problems(tmp_path, TLS)  # urls = [] means mqtt://host:port: plain too
    assert "without TLS" in line


def test_missing_and_unreadable_files_are_named(tmp_path: Path, tls: Path) -> None:
    (tls / "ca.crt").unlink()
    (tls / "device.key").chmod(0o644)
    found = problems(tmp_path, URLS + TLS)
    assert len(found) == 2, found
    assert "mqtt.tls_ca" in found[0] and f"tls_ca {tls / 'ca.crt'} does not exist" in found[0]
    assert "copy ca.crt from the city" in found[0]
    # issue 14: the fix named `chmod 600 .../***`; a path is no secret, the fix names the file
    assert 'mqtt.tls_key = "tls/device.key"' in found[1]
    assert f"chmod 600 {tls / 'device.key'}" in found[1]
    assert "***" not in found[1]


def test_a_certificate_not_arrived_yet_fails_naming_the_file_and_the_command(
    tmp_path: Path, tls: Path
) -> None:
    """Issue 14: a provisioned pad whose certificate has not come back from the city."""
    (tls / "device.crt").unlink()
    (line,) = problems(tmp_path, URLS + TLS)
    assert f"mqtt.tls_cert = \"tls/device.crt\": tls_cert {tls / 'device.crt'} does not exist" \
        in line
    assert "the city signs device.csr with `evaluator tls sign-batch" in line
    assert "then copy the certificate to this path" in line


def test_config_show_shows_the_path_of_the_tls_key(tmp_path: Path, tls: Path) -> None:
    from evaluator.config import show_config

    text, found = show_config([site(tmp_path, URLS + TLS + 'password = "hunter2"')])
    assert found == []
    assert f'tls_key = "{tls / "device.key"}"' in text
    assert 'password = "***"' in text and "hunter2" not in text


def test_a_file_that_is_no_certificate_is_named(tmp_path: Path, tls: Path) -> None:
    (tls / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\nAAAA\n", encoding="ascii")
    (line,) = problems(tmp_path, URLS + TLS)
    assert "mqtt.tls_ca" in line and "not a PEM certificate" in line


def test_a_certificate_for_another_pad_is_refused(tmp_path: Path, tls: Path) -> None:
    (line,) = problems(tmp_path, URLS + TLS, device="pad-b")
    assert "mqtt.tls_cert" in line
    assert "made out to 'pad-a', not to this pad's [device] id 'pad-b'" in line


def test_a_certificate_for_another_key_is_refused(tmp_path: Path, tls: Path) -> None:
    (tls / "device.key").unlink()
    tlscerts.create_tls_key(tls / "device.key")  # a new key; the certificate is the old one's
    (line,) = problems(tmp_path, URLS + TLS)
    assert "mqtt.tls_cert" in line and "not for tls_key" in line


def test_status_every_reaches_the_worker_and_is_bounded(tmp_path: Path) -> None:
    from evaluator.devices import _sync

    config = load_config([site(tmp_path, 'status_every = "5m"')])
    assert config.mqtt.status_every == 300.0
    worker = _sync(config)
    assert worker.status_every == 300.0
    assert load_config([site(tmp_path, "")]).mqtt.status_every == 60.0
    (line,) = problems(tmp_path, 'status_every = "1s"')
    assert "mqtt.status_every" in line
