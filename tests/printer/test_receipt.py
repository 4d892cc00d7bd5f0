"""printer.receipt: what a receipt holds, and the text it refuses to print."""

from __future__ import annotations

import dataclasses
import datetime
import re

import pytest

from printer.errors import ReceiptError
from printer.receipt import Receipt
from tests.printer.fakes import receipt


def fields(**changes: object) -> dict[str, object]:
    base = {f.name: getattr(receipt(1), f.name) for f in dataclasses.fields(Receipt)}
    return {**base, **changes}


def test_a_receipt_has_no_field_for_the_citizen() -> None:
    assert {f.name for f in dataclasses.fields(Receipt)} == {
        "hall",
        "window",
        "matter_name",
        "serials",
        "clerk_name",
        "clerk_id",
        "issued_at",
        "qr_url",
        "short_code",
    }


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"matter_name": "居民身份证\x1b@换领"}, "U+001B"),  # an ESC would be a printer command
        ({"hall": "大厅\n二楼"}, "U+000A"),
        ({"window": "A\u200d12"}, "U+200D"),
        ({"matter_name": "补领 44052419900101123X 身份证"}, "resident ID"),
        ({"clerk_name": "陈 13812345678"}, "mobile"),
        ({"matter_name": "   "}, "empty"),
        ({"clerk_name": "", "clerk_id": "A1"}, "both"),
        ({"serials": ()}, "1 to"),
        ({"serials": "S1"}, "list"),
        ({"serials": ("S 1",)}, "serial"),
        ({"serials": ("S" * 51,)}, "longer"),
        ({"qr_url": "https://x.org/评价"}, "ASCII"),
        ({"qr_url": "https://x.org/a b"}, "ASCII"),
        ({"qr_url": "https://x.org/" + "a" * 600}, "512"),
        ({"short_code": "k7qd"}, "short_code"),
        ({"short_code": "-K7QD"}, "short_code"),
        ({"issued_at": "2026-11-27 10:21"}, "datetime"),
    ],
)
def test_a_field_that_cannot_be_printed_is_refused_naming_it(
    changes: dict[str, object], says: str
) -> None:
    with pytest.raises(ReceiptError, match=re.escape(says)):
        Receipt(**fields(**changes))  # type: ignore[arg-type]


def test_serials_are_not_scanned_for_identity_and_text_is_stripped() -> None:
    # A 业务流水号 often has the shape of an ID number (area + date + sequence): it is kept.
    made = Receipt(**fields(serials=["44052419900101123X"], hall="  汕头市政务服务中心 "))  # type: ignore[arg-type]
    assert made.serials == ("44052419900101123X",)
    assert made.hall == "汕头市政务服务中心"


def test_a_self_service_receipt_has_no_clerk() -> None:
    made = Receipt(**fields(clerk_name="", clerk_id=""))  # type: ignore[arg-type]
    assert made.clerk_name == made.clerk_id == ""


def test_json_round_trip_and_refusal() -> None:
    original = receipt(7, serials=3)
    assert Receipt.from_json(original.to_json()) == original
    broken = original.to_json() | {"phone": "13812345678"}
    with pytest.raises(ReceiptError, match="exactly the fields"):
        Receipt.from_json(broken)
    with pytest.raises(ReceiptError, match="ISO"):
        Receipt.from_json(original.to_json() | {"issued_at": "yesterday"})
    assert Receipt.from_json(
        original.to_json() | {"issued_at": "2026-11-27T10:21:00+08:00"}
    ).issued_at == datetime.datetime.fromisoformat("2026-11-27T10:21:00+08:00")
