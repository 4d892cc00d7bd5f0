"""One rule for a pad's device id, refused with the same words at every step that takes one:
the pad's config check, ``evaluator provision``, the CA's signing (registration: in
tests/sync/hub/test_db.py, on both databases).  Issue 16: provision accepted ``hub-1`` and
``_hub``, which signing and registration refused later; signing took ``_hub``, ``.``, ``..``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from evaluator.cli import main
from evaluator.config import check_config
from evaluator.rules.deviceid import device_id_problem
from sync import tlscerts

#: Ids some step refuses: a receiver's name, the receiver's topic, full-width, wildcards, a
#: topic separator, too long, folder names, a space, an accent.
BAD_IDS = ["hub-1", "hub-", "_hub", "ｈａｌｌ１", "pad+1", "pad#", "a/b", "p" * 65, ".", "..",
           "pad 1", "pädl"]  # fmt: skip
GOOD_IDS = ["440500-hall1-w01", "hub", "hub_1", "Hub-1", "pad.1", "_pad", "p" * 64]


@pytest.mark.parametrize("device_id", BAD_IDS)
def test_the_rule_refuses_and_says_what_an_id_must_be(device_id: str) -> None:
    why = device_id_problem(device_id)
    assert why is not None and why.startswith(repr(device_id))
    assert "expected 1 to 64 letters, digits, '.', '_' or '-'" in why


@pytest.mark.parametrize("device_id", GOOD_IDS)
def test_the_rule_takes_what_a_pad_may_be_called(device_id: str) -> None:
    assert device_id_problem(device_id) is None


def test_full_width_and_topic_characters_get_a_hint() -> None:
    assert "did you mean 'hall1'? (full-width characters)" in str(device_id_problem("ｈａｌｌ１"))
    assert "would reach other pads' topics" in str(device_id_problem("a/b"))


@pytest.mark.parametrize("device_id", BAD_IDS)
def test_the_pads_config_check_refuses_it(tmp_path: Path, device_id: str) -> None:
    path = tmp_path / "evaluator.toml"
    path.write_text(f"[device]\nid = {json.dumps(device_id)}\n", encoding="utf-8")
    said = [p.expected for p in check_config([path]) if p.key == "device.id"]
    assert device_id_problem(device_id) in said


@pytest.mark.parametrize("device_id", BAD_IDS)
def test_provision_refuses_it_at_once_and_writes_nothing(
    tmp_path: Path, device_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sheet = tmp_path / "fleet.csv"
    sheet.write_text(f'device_id,area_code\n"{device_id}",440500\npad-ok,440500\n',
                     encoding="utf-8")  # fmt: skip
    out = tmp_path / "out"
    assert main(["provision", str(sheet), "--out", str(out)]) == 1
    text = capsys.readouterr().out
    assert f"row 2: device_id = \"{device_id}\": {device_id_problem(device_id)}" in text
    assert sorted(p.name for p in out.iterdir()) == ["devices.csv", "pad-ok"]
    assert device_id not in (out / "devices.csv").read_text(encoding="utf-8")


def _request(cn: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, cn, _validate=False)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> tlscerts.CertificateAuthority:
    return tlscerts.make_ca(tmp_path_factory.mktemp("ca") / "ca")


@pytest.mark.parametrize("device_id", BAD_IDS)
def test_the_city_does_not_sign_it_for_a_pad(
    ca: tlscerts.CertificateAuthority, device_id: str
) -> None:
    with pytest.raises(tlscerts.TlsCertError) as refused:
        tlscerts.sign_csr(_request(device_id), ca)
    assert str(device_id_problem(device_id)) in str(refused.value)
    assert device_id not in [e.cn for e in tlscerts.issued(ca.folder)]


def test_a_receivers_name_is_still_signed_as_a_receiver(
    ca: tlscerts.CertificateAuthority,
) -> None:
    pem = tlscerts.sign_csr(_request("hub-7"), ca, receiver=True)
    assert tlscerts.cert_common_name(pem) == "hub-7"
    assert tlscerts.cert_common_name(tlscerts.sign_csr(_request("Hub-7"), ca)) == "Hub-7"
