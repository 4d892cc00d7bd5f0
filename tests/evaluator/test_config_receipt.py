"""``[receipt]`` and ``[printer]``: checked like every other key, the printer through the printer
adapter's own rules, each problem named by key, file and line."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from evaluator.config import (
    PRINTER_CONNECTION_KEYS,
    PRINTER_PROFILE_KEYS,
    URL_TEMPLATE_MAX,
    check_config,
    load_config,
)
from evaluator.rules.errors import ConfigError
from printer import ConnectionSpec, PrinterProfile

PRINTING = (
    '[device]\nid = "unit-1"\nwindow = "12号窗口"\n'
    '[receipt]\nprint = "always"\nurl_template = "https://hcp.example.org/r?{query}"\n'
    'hall = "汕头市政务服务中心"\n'
)


def site(tmp_path: Path, text: str, name: str = "site.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def lines(tmp_path: Path, text: str) -> list[str]:
    return [str(p) for p in check_config([site(tmp_path, text)])]


def test_the_keys_are_the_printer_adapters_fields() -> None:
    assert set(PRINTER_CONNECTION_KEYS) == {f.name for f in dataclasses.fields(ConnectionSpec)}
    assert set(PRINTER_PROFILE_KEYS) == {f.name for f in dataclasses.fields(PrinterProfile)}


def test_the_defaults_print_nothing_on_the_stand_in_with_a_spool_next_to_the_store(
    tmp_path: Path,
) -> None:
    c = load_config([site(tmp_path, f'[device]\nid = "u"\n[storage]\npath = "{tmp_path}/r.db"\n')])
    assert (c.receipt.print, c.receipt.expiry, c.receipt.qr_on_screen) == ("never", 7 * 86400, 30)
    assert c.printer.kind == "dummy" and c.printer.spool_dir == tmp_path / "receipts"
    assert ConnectionSpec.from_config(c.printer.connection) == ConnectionSpec()
    assert PrinterProfile.from_config(c.printer.profile) == PrinterProfile()


def test_a_usb_printer_in_hex_with_durations_in_seconds(tmp_path: Path) -> None:
    c = load_config(
        [
            site(
                tmp_path,
                PRINTING + '[printer]\nkind = "usb"\nvendor_id = 0x0416\nproduct_id = 0x5011\n'
                'in_ep = 0x81\nout_ep = 0x03\ntimeout = "3s"\nstatus_timeout = "250ms"\n'
                'paper = "80mm"\nfont = "fonts/cjk.ttc"\nspool_dir = "spool"\n',
            )
        ]
    )
    spec = ConnectionSpec.from_config(c.printer.connection)
    assert (spec.vendor_id, spec.product_id, spec.in_ep, spec.out_ep) == (0x416, 0x5011, 0x81, 3)
    assert (spec.timeout, spec.status_timeout) == (3.0, 0.25)
    profile = PrinterProfile.from_config(c.printer.profile)
    assert profile.paper == "80mm" and profile.font == str(tmp_path / "fonts" / "cjk.ttc")
    assert c.printer.spool_dir == tmp_path / "spool"


def test_printing_needs_the_template_the_hall_and_the_window(tmp_path: Path) -> None:
    got = lines(tmp_path, '[device]\nid = "unit-1"\n[receipt]\nprint = "unrated"\n')
    assert got == [
        f"{tmp_path / 'site.toml'}:4: receipt.url_template: required when receipt.print = "
        '"unrated": the city\'s rating page, e.g. "https://hcp.example.org/r?{query}"',
        f'{tmp_path / "site.toml"}:4: receipt.hall: required when receipt.print = "unrated": '
        "the hall's name, printed at the top of every receipt",
        f'{tmp_path / "site.toml"}:4: device.window: required when receipt.print = "unrated": '
        "the window's label, printed on every receipt",
    ]
    assert lines(tmp_path, PRINTING) == []


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('print = "alwys"', "did you mean 'always'?"),
        (
            'url_template = "https://hcp.example.org/r"',
            "did you mean 'https://hcp.example.org/r?{query}'?",
        ),
        ('url_template = "https://hcp.example.org/r?x={query}"', "right after ? or &"),
        ('url_template = "ftp://hcp.example.org/r?{query}"', "http:// or https://"),
        ('url_template = "https://hcp.example.org/评价?{query}"', "must be ASCII"),
        (f'url_template = "https://h.org/{"x" * URL_TEMPLATE_MAX}?{{query}}"', "at most 120"),
        ('expiry = "10s"', "from 60s"),
        ('expiry = "168"', "durations need a unit"),
        ('hall = "' + "厅" * 65 + '"', "at most 64 characters"),
        ('hall = "大厅 13800138000"', "mobile phone number"),
        ('qr_on_screen = "1s"', "from 5s to 600s"),
    ],
)
def test_a_bad_receipt_value_is_named_with_its_line(tmp_path: Path, text: str, says: str) -> None:
    [problem] = lines(tmp_path, f'[device]\nid = "unit-1"\n[receipt]\n{text}\n')
    assert problem.startswith(f"{tmp_path / 'site.toml'}:4: receipt.") and says in problem


LSUSB = "must be 0x0001–0xFFFF (see lsusb)"


@pytest.mark.parametrize(
    ("printer", "expected"),
    [
        ('kind = "usb"', [f"4: printer.vendor_id = 0: vendor_id {LSUSB}",
                          f"4: printer.product_id = 0: product_id {LSUSB}"]),
        ('kind = "file"', ['4: printer.path = "": path must name the file device']),
        ('kind = "network"\nhost = "h"\nport = 0', ["6: printer.port = 0: port must be 1–65535"]),
        ('kind = "lpt"', ['4: printer.kind = "lpt": kind must be one of dummy, usb, serial']),
        ('timeout = "0s"', ["4: printer.timeout = 0.0: timeout must be a number of seconds"]),
        ('paper = "60mm"\nqr_ecc = "X"', ['4: printer.paper = "60mm": paper must be one of 58mm',
                                         '5: printer.qr_ecc = "X": qr_ecc must be one of L, M']),
    ],
)  # fmt: skip
def test_the_printer_is_checked_by_the_printer_adapters_own_rules(
    tmp_path: Path, printer: str, expected: list[str]
) -> None:
    got = lines(tmp_path, f'[device]\nid = "unit-1"\n[printer]\n{printer}\n')
    prefix = f"{tmp_path / 'site.toml'}:"
    assert len(got) == len(expected), got
    for line, want in zip(got, expected, strict=True):
        assert line.startswith(prefix + want), line
    with pytest.raises(ConfigError):
        load_config([site(tmp_path, f'[device]\nid = "unit-1"\n[printer]\n{printer}\n')])


def test_a_key_the_kind_needs_is_asked_where_the_kind_was_set(tmp_path: Path) -> None:
    base = site(tmp_path, '[device]\nid = "unit-1"\n', "base.toml")
    window = site(tmp_path, '# window 12\n[printer]\nkind = "serial"\n', "w12.toml")
    [problem] = check_config([base, window])
    assert str(problem).startswith(f'{window}:3: printer.path = "": path must name the serial')


def test_a_template_must_end_with_its_query_and_own_no_link_field(tmp_path: Path) -> None:
    for template, says in [
        ("https://hcp.example.org/r?{query}&x=1", "must end with {query}"),
        ("https://hcp.example.org/r?s=1&{query}", "clash with the link's fields"),
    ]:
        [problem] = lines(tmp_path, f'[device]\nid = "u"\n[receipt]\nurl_template = "{template}"\n')
        assert "receipt.url_template" in problem and says in problem, problem
