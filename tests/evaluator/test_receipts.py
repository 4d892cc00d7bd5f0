"""evaluator.receipts: what a receipt names and carries, on the real Receipt model with a real
device key; and the integrator guide's link examples, checked with its own recipe (run as
written) and with ``ratelink.verify``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from evaluator.config import load_config
from evaluator.receipts import build, content
from evaluator.rules import ratelink
from evaluator.rules.request import parse_request
from printer import ReceiptError
from sync.keys import DeviceKey, PublicKey

REPO = Path(__file__).resolve().parents[2]
INTEGRATOR = REPO / "docs" / "integrator.md"
#: The key of the guide's examples: made for the page from these fixed bytes, never a pad's.
DOC_KEY = DeviceKey(Path("(docs)"), Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
CLERK = {"id": "A1023", "name": "陈晓明"}


def case(serial: str, code: str = "M-1", name: str = "居民身份证换领") -> dict[str, str]:
    return {"serial": serial, "matter_code": code, "matter_name": name, "kind": "instant"}


def req(**body: Any) -> Any:
    return parse_request({"stage": "deliver", "clerk": CLERK, **body})


@pytest.fixture
def config(tmp_path: Path) -> Any:
    site = tmp_path / "site.toml"
    site.write_text(
        '[device]\nid = "440500-hall1-w12"\nwindow = "12号窗口"\n'
        f'[storage]\npath = "{tmp_path / "r.db"}"\n'
        '[receipt]\nprint = "always"\nurl_template = "https://hcp.example.org/r?{query}"\n'
        'hall = "汕头市政务服务中心"\nexpiry = "72h"\n',
        encoding="utf-8",
    )
    return load_config([site])


def test_a_batch_names_its_matter_and_every_serial() -> None:
    batch = req(cases=[case("B-1"), case("B-2")])
    assert content(batch, batch.serials) == ("居民身份证换领", "M-1", ("B-1", "B-2"))


def test_a_theme_is_named_after_itself_and_its_items_after_their_matter() -> None:
    theme = req(
        cases=[
            case("T-1", "M-FOOD", "食品经营许可证核发"),
            case("T-2", "M-LIC", "营业执照设立登记"),
        ],
        theme={"code": "YJS-7", "name": "开办餐饮店"},
    )
    assert content(theme, theme.serials) == ("开办餐饮店", "YJS-7", ("T-1", "T-2"))
    assert content(theme, ("T-2",)) == ("营业执照设立登记", "M-LIC", ("T-2",))
    no_code = req(cases=[case("T-1", "M-FOOD"), case("T-2", "M-LIC")], theme={"name": "开办餐饮店"})
    assert content(no_code, no_code.serials)[1] == "M-FOOD"


def test_build_signs_what_the_receipt_prints(config: Any) -> None:
    request = req(cases=[case("4405002026112600041")])
    slip, receipt = build(config, request, request.serials, key=DOC_KEY, wall=1_795_744_800)
    verdict = ratelink.verify(slip.url, key_id=DOC_KEY.key_id, check=DOC_KEY.public.check,
                              now=1_795_744_800)  # fmt: skip
    assert verdict.ok and verdict.link is not None
    link = verdict.link
    assert (link.serials, link.clerk, link.matter_code) == (
        ("4405002026112600041",),
        "A1023",
        "M-1",
    )
    assert link.expires - link.issued == 72 * 3600
    assert (receipt.qr_url, receipt.short_code) == (slip.url, link.short_code)
    assert (receipt.hall, receipt.window) == ("汕头市政务服务中心", "12号窗口")
    assert (receipt.clerk_name, receipt.clerk_id) == ("陈晓明", "A1023")


def test_a_terminal_is_signed_as_t_colon_and_printed_without_a_clerk(config: Any) -> None:
    request = parse_request({"stage": "deliver", "terminal": "ZZ-0107", "cases": [case("P-1")]})
    slip, receipt = build(config, request, request.serials, key=DOC_KEY, wall=1_795_744_800)
    parsed = ratelink.parse(slip.url)
    assert parsed is not None and parsed[0].clerk == "T:ZZ-0107"
    assert (receipt.clerk_name, receipt.clerk_id) == ("", "")


def test_a_link_too_long_to_print_raises_with_its_slip(config: Any) -> None:
    serials = [f"S{n:02d}-" + "X" * 40 for n in range(12)]
    request = req(cases=[case(s) for s in serials])
    with pytest.raises(ReceiptError) as caught:
        build(config, request, request.serials, key=DOC_KEY, wall=1_795_744_800)
    slip = caught.value.slip  # type: ignore[attr-defined]
    assert len(slip.url) > 512 and slip.serials == tuple(serials)


# -- the integrator guide's links ------------------------------------------------------------


def _doc_links() -> list[str]:
    text = INTEGRATOR.read_text(encoding="utf-8")
    block = re.search(r"<!-- receipt-link -->\s*```text\n(.*?)```", text, re.S)
    assert block is not None
    return block.group(1).split()


def _doc_recipe() -> Any:
    text = INTEGRATOR.read_text(encoding="utf-8")
    code = re.search(r"```python\n(import base64, time, urllib.parse.*?)```", text, re.S)
    assert code is not None
    scope: dict[str, Any] = {}
    exec(code.group(1), scope)  # the guide's code, as written
    return scope["check_link"]


def test_the_guides_key_is_the_one_it_shows() -> None:
    text = INTEGRATOR.read_text(encoding="utf-8")
    assert f"`{DOC_KEY.public.text}` (key id\n`{DOC_KEY.key_id}`" in text


def test_the_guides_links_verify_with_its_recipe_and_with_ratelink(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    check_link = _doc_recipe()
    links = _doc_links()
    assert len(links) == 2
    public = PublicKey.parse(DOC_KEY.public.text)
    monkeypatch.setattr("time.time", lambda: 1_795_750_000.0)  # within the links' week
    found = [check_link(url, DOC_KEY.public.text, public.key_id, set()) for url in links]
    assert [f["serials"] for f in found] == [
        ["4405002026112600041"],
        ["4405002026112600042", "4405002026112600043"],
    ]
    assert [f["clerk"] for f in found] == ["A1023", "T:ZZ-0107"]
    for url in links:
        assert ratelink.verify(url, key_id=public.key_id, check=public.check,
                               now=1_795_750_000).ok  # fmt: skip
    # The recipe refuses what ratelink refuses.
    tampered = links[0].replace("s=4405002026112600041", "s=4405002026112600049")
    with pytest.raises(InvalidSignature):
        check_link(tampered, DOC_KEY.public.text, public.key_id, set())
    with pytest.raises(ValueError, match="replayed"):
        check_link(links[0], DOC_KEY.public.text, public.key_id, {"K7QD3MXA"})
    with pytest.raises(ValueError, match="malformed"):
        check_link(links[0].replace("?", "?s=1&", 1), DOC_KEY.public.text, public.key_id, set())
    monkeypatch.setattr("time.time", lambda: 1_796_349_600.0)
    with pytest.raises(ValueError, match="expired"):
        check_link(links[0], DOC_KEY.public.text, public.key_id, set())
