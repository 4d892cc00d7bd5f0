"""The receipt's dynamic QR link: built, signed, and refused for each reason the city needs."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import pytest

from evaluator.rules import ratelink
from evaluator.rules.ratelink import make_link, normalise_code, parse, verify
from sync.keys import DeviceKey

TEMPLATE = "https://hcp.example.org/r?{query}"
NOW = 1_795_000_000
SERIAL = "44050020261126000123"
MATTER = "11440500MB2C9300XR4442111009000"


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> DeviceKey:
    return DeviceKey.create(tmp_path_factory.mktemp("k") / "device.key")


@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory) -> DeviceKey:
    return DeviceKey.create(tmp_path_factory.mktemp("o") / "device.key")


def link(key: DeviceKey, **kw: object) -> str:
    args: dict[str, object] = dict(
        device_id="hall1-w12",
        serials=[SERIAL],
        matter_code=MATTER,
        clerk="A1023",
        now=NOW,
        key_id=key.key_id,
        sign=key.sign,
    )
    args.update(kw)
    url, _ = make_link(TEMPLATE, **args)  # type: ignore[arg-type]
    return url


def check(url: str, key: DeviceKey, **kw: object) -> ratelink.Verdict:
    args: dict[str, object] = dict(key_id=key.key_id, check=key.public.check, now=NOW + 60)
    args.update(kw)
    return verify(url, **args)  # type: ignore[arg-type]


def test_a_genuine_link_verifies_and_names_the_case(key: DeviceKey) -> None:
    url = link(key)
    verdict = check(url, key)
    assert verdict.ok, verdict.message
    assert verdict.link is not None
    assert verdict.link.serials == (SERIAL,)
    assert (verdict.link.matter_code, verdict.link.clerk) == (MATTER, "A1023")
    assert verdict.link.channel == 3
    assert verdict.link.expires - verdict.link.issued == ratelink.DEFAULT_EXPIRY_S
    assert url.startswith("https://hcp.example.org/r?v=1&d=hall1-w12&")


@pytest.mark.parametrize("serials", [1, 3])
def test_a_link_is_short_enough_for_a_sharp_qr_at_58_mm(key: DeviceKey, serials: int) -> None:
    """One case: QR version ≤ 11 at ECC M (61 modules; with the 4-module quiet zone 69 on the
    384 dots of 58 mm paper: 5 dots = 0.63 mm a module, a 43 mm code); a batch of three ≤ 13."""
    import qrcode

    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4)
    code.add_data(link(key, serials=[f"{SERIAL[:-1]}{n}" for n in range(serials)]))
    code.make(fit=True)
    assert code.version <= (11 if serials == 1 else 13)
    assert 384 // ((17 + 4 * code.version) + 8) >= 4  # at least 4 dots (0.5 mm) a module


@pytest.mark.parametrize(
    ("field", "value"),
    [("s", "44050020261126000124"), ("c", "A1024"), ("e", str(NOW + 10**8)), ("m", "X" * 31)],
)
def test_a_tampered_field_is_refused_as_tampered(key: DeviceKey, field: str, value: str) -> None:
    url = link(key)
    parts = urllib.parse.urlsplit(url)
    pieces = [
        f"{field}={value}" if piece.startswith(f"{field}=") else piece
        for piece in parts.query.split("&")
    ]
    forged = parts._replace(query="&".join(pieces)).geturl()
    assert forged != url
    assert check(forged, key).reason == "tampered"


def test_a_link_signed_by_another_key_is_refused(key: DeviceKey, other: DeviceKey) -> None:
    assert check(link(other), key).reason == "wrong_key"
    # Another key claiming this key's id: the signature does not check.
    assert check(link(other, key_id=key.key_id), key).reason == "tampered"


def test_an_expired_or_future_link_is_refused(key: DeviceKey) -> None:
    url = link(key, expiry_s=3600)
    assert check(url, key, now=NOW + 3599).ok
    assert check(url, key, now=NOW + 3600).reason == "expired"
    assert check(url, key, now=NOW - 3600).reason == "not_yet_valid"


def test_a_used_nonce_is_a_replay(key: DeviceKey) -> None:
    url = link(key, nonce="ABCD2345")
    assert check(url, key).ok
    assert check(url, key, used_nonces={"ABCD2345"}).reason == "replayed"


@pytest.mark.parametrize(
    "url",
    [
        "https://hcp.example.org/r",
        "https://hcp.example.org/r?v=1&sig=AAAA",
        "not a url at all",
        "",
    ],
)
def test_garbage_is_malformed_not_an_error(key: DeviceKey, url: str) -> None:
    assert check(url, key).reason == "malformed"


def test_a_template_may_carry_its_own_parameters_first(key: DeviceKey) -> None:
    url, made = make_link(
        "https://hcp.example.org/rate?src=hall1&{query}",
        device_id="d",
        serials=["1", "2"],
        matter_code="m",
        clerk="T:ZZ-0107",
        now=NOW,
        key_id=key.key_id,
        sign=key.sign,
    )
    verdict = check(url, key)
    assert verdict.ok and verdict.link == made
    assert made.serials == ("1", "2") and made.clerk == "T:ZZ-0107"


@pytest.mark.parametrize(
    "template",
    [
        "https://x/r",
        "https://x/r?{query}&{query}",
        "ftp://x/?{query}",
        "https://x/r{query}",
        "https://x/r?{query}&src=qr",  # a parameter after the signature: never reads back
        "https://x/r?{query}/",
        "https://x/r?d=hall1&{query}",  # the template's own d= clashes with the device field
        "https://x/r?%73=1&{query}",  # … however it is spelt
        "https://[x/r?{query}",
    ],
)
def test_a_bad_template_is_refused(template: str, key: DeviceKey) -> None:
    assert ratelink.check_template(template)
    with pytest.raises(ValueError, match="template"):
        make_link(
            template, device_id="d", serials=["1"], matter_code="m", clerk="c", now=NOW,
            key_id=key.key_id, sign=key.sign,
        )  # fmt: skip


def test_the_short_code_is_the_nonce_and_survives_typing() -> None:
    nonce = ratelink.new_nonce()
    assert len(nonce) == 8 and set(nonce) <= set(ratelink.CROCKFORD)
    made = ratelink.RateLink("d", ("s",), "m", "c", NOW, NOW + 1, nonce, "k")
    typed = made.short_code.lower().replace("0", "o").replace("1", "l")
    assert normalise_code(typed) == nonce
    assert len({ratelink.new_nonce() for _ in range(2000)}) == 2000


def test_parse_reads_back_what_was_signed(key: DeviceKey, tmp_path: Path) -> None:
    url = link(key)
    parsed = parse(url)
    assert parsed is not None
    made, signed, signature = parsed
    assert key.public.check(signed, signature)
    assert signed.decode() == ratelink.query_of(made)


def test_a_field_repeated_before_the_link_is_refused(key: DeviceKey) -> None:
    """A web framework reading the first ``s`` would see another case than the signed one."""
    url = link(key)
    head, query = url.split("?", 1)
    for field in ("s", "c", "v", "sig", "%73", "%63", "%65", "%73%69%67", "s+"):
        forged = f"{head}?{field}=OTHER&{query}"
        if field == "s+":  # "s " is not "s": a framework reads another name
            assert check(forged, key).ok
            continue
        assert check(forged, key).reason == "malformed", field
    assert check(f"{head}?src=hall1&{query}", key).ok  # a parameter of the template's own


def test_odd_characters_in_a_serial_survive_the_round_trip(key: DeviceKey) -> None:
    serials = ["A,1", "B&2", "C=3", "中4", "E%5"]
    url = link(key, serials=serials)
    verdict = check(url, key)
    assert verdict.ok and verdict.link is not None
    assert verdict.link.serials == tuple(serials)
    assert url.isascii()


@pytest.mark.parametrize(
    "mangle",
    [
        lambda url: url + "!!!!",  # characters a lenient base64 decoder skips
        lambda url: url[:-10] + "...." + url[-10:],
        lambda url: url + "%21",
        lambda url: url.replace("https://hcp.example.org", "https://[hcp"),  # urlsplit raises
        lambda url: url.replace("hcp.example.org", "hcp\uff03example.org"),
    ],
)
def test_a_mangled_link_is_malformed_and_never_raises(key: DeviceKey, mangle: object) -> None:
    assert check(mangle(link(key)), key).reason == "malformed"  # type: ignore[operator]


def test_a_link_cannot_be_made_already_expired(key: DeviceKey) -> None:
    with pytest.raises(ValueError, match="expiry_s"):
        link(key, expiry_s=0)
