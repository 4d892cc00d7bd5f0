"""``evaluator provision``: a 20-row fleet sheet with bad rows, re-runs that change only what
changed, keys made once, a TLS request for mqtts rows.  Real files, real keys, the real check."""

from __future__ import annotations

import csv
import os
import stat
import tomllib
from pathlib import Path

import pytest

from evaluator.cli import main
from evaluator.config import load_config
from evaluator.provision import ProvisionError, provision
from evaluator.rules.deviceid import device_id_problem
from sync.keys import DeviceKey, PublicKey
from sync.tlscerts import csr_common_name, make_ca

HEADER = ("device_id,mode,hall,window,area_code,brokers,counter_port,printer,paper,receipts,"
          "buttons,screen.dpi")  # fmt: skip
GOOD = [
    "pad-01,clerk,汕头市政务服务中心,1号窗口,440500,mqtt://b.local:1883,/dev/ttyUSB0,"
    'usb:0416:5011,58mm,unrated,"17,27,22,23,24",',
    "pad-02,clerk,汕头市政务服务中心,2号窗口,440500,mqtt://b1.local;mqtt://b2.local:1884,"
    "/dev/ttyUSB0,network:192.168.1.52:9100,80mm,always,,170",
    "pad-03,self-service,汕头市政务服务中心,自助终端区,440500,mqtt://b.local,/dev/ttyACM0,,,never,,",
    *[
        f"pad-{n:02},,汕头市政务服务中心,{n}号窗口,440500,mqtt://b.local,,,,,,"
        for n in range(4, 11)
    ],
]
BAD = [
    "bad id!,clerk,Hall,11号窗口,440500,mqtt://b.local,,,,,,",
    "pad-12,clerk,Hall,12号窗口,,mqtt://b.local,,,,,,",
    'pad-13,clerk,Hall,13号窗口,440500,mqtt://b.local,,,,,"17,27,x,23,24",',
    "pad-14,clerk,Hall,14号窗口,440500,mqtt://b.local,,,,,,",
    "pad-14,clerk,Hall,15号窗口,440500,mqtt://b.local,,,,,,",
    "pad-16,clerk,Hall,16号窗口,440500,http://b.local:80;mqtt://ok,,,,,,",
    'pad-17,kiosk,Hall,17号窗口,4405,mqtt://b.local,,,,,"17,17,22,23,40",',
    "pad-18,clerk,Hall,18号窗口,440500,mqtt://b.local,,printer:lp0,,,,",
    "pad-19,clerk,Hall,19号窗口,440500,mqtt://b.local,,,100mm,sometimes,,20",
    "pad-20,clerk,Hall,20号窗口,440500,,,,,,,",
]
TEMPLATE = '[device]\nschema_version = 2\n[mqtt]\nport = 1883\n[screen]\nfullscreen = true\n' \
           '[receipt]\nurl_template = "https://hcp.example.org/r?{query}"\n'  # fmt: skip


def sheet(tmp_path: Path, rows: list[str], name: str = "fleet.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def site(tmp_path: Path) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(TEMPLATE, encoding="utf-8")
    return path


def test_a_20_row_fleet_refuses_each_bad_row_by_number_with_every_problem(
    tmp_path: Path, site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the good and the bad rows interleaved: the numbers are the spreadsheet's (header = 1)
    rows = [r for pair in zip(GOOD, BAD, strict=True) for r in pair]
    fleet = sheet(tmp_path, rows)
    out = tmp_path / "out"
    assert main(["provision", str(fleet), "--template", str(site), "--out", str(out)]) == 1
    text = capsys.readouterr().out
    refused = text[text.index("row 3: bad id!") :]
    assert [line for line in refused.splitlines() if line.startswith("  ")] == [
        '  row 3: device_id = "bad id!": ' + device_id_problem("bad id!"),
        '  row 5: area_code = "": required: the cell is empty (it goes into every rating record)',
        "  row 7: buttons = \"17,27,x,23,24\": expected 5 BCM pin numbers separated by ',' "
        "(非常满意,满意,基本满意,不满意,非常不满意; -1 = not fitted); e.g. 17,27,22,23,24",
        '  row 9: device_id = "pad-14": the same device id is on row 11; every pad needs its own '
        "id",
        '  row 11: device_id = "pad-14": the same device id is on row 9; every pad needs its own '
        "id",
        "  row 13: brokers = \"http://b.local:80;mqtt://ok\": broker URL 'http://b.local:80': the "
        "scheme must be mqtt or mqtts, not 'http'; e.g. mqtts://mqtt1.city.example:8883;"
        "mqtts://mqtt2.city.example:8883",
        '  row 15: mode = "kiosk": expected clerk or self-service',
        '  row 15: buttons = "17,17,22,23,40": pin 17 is given to two buttons',
        '  row 15, column area_code: device.area_code = "4405": expected 6 digits (行政区划代码), '
        'e.g. "440500"',
        "  row 15, column buttons: buttons.very_dissatisfied = 40: expected an integer from -1 "
        "to 27",
        '  row 17: printer = "printer:lp0": expected one of usb:0416:5011, '
        "serial:/dev/ttyUSB1@9600, network:192.168.1.50:9100, file:/dev/usb/lp0 or dummy",
        "  row 19, column screen.dpi: screen.dpi = 20: expected an integer from 50 to 1000",
        '  row 19, column receipts: receipt.print = "sometimes": expected one of never, always, '
        "unrated, request",
        '  row 19, column paper: printer.paper = "100mm": paper must be one of 58mm, 80mm, not '
        "'100mm'",
    ]
    # the pad without brokers is fine: it keeps the template's (the default) broker
    assert "row 21: pad-20: created" in text
    assert text.endswith("11 created, 0 changed, 0 unchanged, 9 refused\n")
    written = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert written == [*(f"pad-{n:02}" for n in range(1, 11)), "pad-20"]  # nothing of a bad row
    with (out / "devices.csv").open(encoding="utf-8") as f:
        registered = list(csv.DictReader(f))
    assert [r["device_id"] for r in registered] == [
        *(f"pad-{n:02}" for n in range(1, 11)),
        "pad-20",
    ]
    for r in registered:  # what the city registers is the key the pad holds
        key = DeviceKey.load(out / r["device_id"] / "device.key")
        assert PublicKey.parse(r["public_key"]).raw == key.public.raw
        assert (out / r["device_id"] / "device.pub").read_text() == r["public_key"] + "\n"


def test_the_file_is_template_and_row_minus_the_defaults_and_loads(
    tmp_path: Path, site: Path
) -> None:
    [o1, o2, o3] = provision(sheet(tmp_path, GOOD[:3]), site, tmp_path / "out")
    assert (o1.status, o2.status, o3.status) == ("created", "created", "created")
    path = tmp_path / "out" / "pad-02" / "evaluator.toml"
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# evaluator.toml of device pad-02, made by `evaluator provision` from\n"
                           "# fleet.csv row 3 and the template site.toml.\n")  # fmt: skip
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it may hold a broker password
    assert tomllib.loads(text) == {
        "device": {"id": "pad-02", "window": "2号窗口", "schema_version": 2},
        "counter": {"port": "/dev/ttyUSB0"},
        "mqtt": {"urls": ["mqtt://b1.local", "mqtt://b2.local:1884"]},  # port 1883: the default
        "screen": {"dpi": 170, "fullscreen": True},
        "receipt": {
            "print": "always",
            "url_template": "https://hcp.example.org/r?{query}",
            "hall": "汕头市政务服务中心",
        },
        "printer": {"kind": "network", "host": "192.168.1.52", "paper": "80mm"},
    }
    config = load_config([path])
    assert (config.printer.port, config.device.area_code) == (9100, "440500")
    one = tomllib.loads((tmp_path / "out" / "pad-01" / "evaluator.toml").read_text())
    assert one["buttons"] == {"very_satisfied": 17, "satisfied": 27, "basically_satisfied": 22,
                              "dissatisfied": 23, "very_dissatisfied": 24}  # fmt: skip
    assert one["printer"] == {"kind": "usb", "vendor_id": 0x0416, "product_id": 0x5011}
    three = (tmp_path / "out" / "pad-03" / "evaluator.toml").read_text()
    assert "# Mode: self-service terminal (自助终端)" in three


def test_a_rerun_rewrites_nothing_and_a_changed_row_only_its_file(
    tmp_path: Path, site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = sheet(tmp_path, GOOD)
    out = tmp_path / "out"
    provision(fleet, site, out)
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) == 10 * 3 + 1  # no TLS request for plain mqtt://
    before = {p: p.read_bytes() for p in files}
    old = 1_000_000_000
    for p in files:
        os.utime(p, ns=(old, old))
    assert main(["provision", str(fleet), "--template", str(site), "--out", str(out)]) == 0
    assert capsys.readouterr().out.endswith("0 created, 0 changed, 10 unchanged, 0 refused\n")
    assert all(p.stat().st_mtime_ns == old for p in files), "a file was written again"
    assert {p: p.read_bytes() for p in files} == before

    changed = [GOOD[0].replace("1号窗口", "1号窗口A"), *GOOD[1:]]
    fleet.write_text("\n".join([HEADER, *changed]) + "\n", encoding="utf-8")
    outcomes = provision(fleet, site, out)
    assert [(o.device_id, o.status, o.files) for o in outcomes][:2] == [
        ("pad-01", "changed", ["evaluator.toml"]), ("pad-02", "unchanged", [])
    ]  # fmt: skip
    rewritten = [p for p in files if p.stat().st_mtime_ns != old]
    assert rewritten == [out / "pad-01" / "evaluator.toml"]
    assert (out / "pad-01" / "device.key").read_bytes() == before[out / "pad-01" / "device.key"]


def test_a_key_is_never_replaced_even_when_the_folder_was_made_by_hand(
    tmp_path: Path, site: Path
) -> None:
    out = tmp_path / "out"
    kept = DeviceKey.create(out / "pad-01" / "device.key")
    [outcome] = provision(sheet(tmp_path, GOOD[:1]), site, out)
    assert outcome.status == "created" and outcome.public_key == kept.public.text


def test_an_mqtts_row_gets_a_tls_key_and_a_request_named_for_the_device(
    tmp_path: Path,
) -> None:
    make_ca(tmp_path / "city")
    site = tmp_path / "site.toml"
    site.write_text('[mqtt]\ntls_ca = "city/ca.crt"\n', encoding="utf-8")  # relative to site
    rows = ["pad-t1,,H,1号窗口,440500,mqtts://mqtt.city.example,,,,,,",
            "pad-t2,,H,2号窗口,440500,mqtts://m1;mqtts://m2:8884,,,,,,"]  # fmt: skip
    fleet = sheet(tmp_path, rows)
    out = tmp_path / "out"
    first = provision(fleet, site, out)
    assert [o.status for o in first] == ["created", "created"]
    tls = out / "pad-t1" / "tls"
    assert stat.S_IMODE((tls / "device.key").stat().st_mode) == 0o600
    assert csr_common_name((tls / "device.csr").read_bytes()) == "pad-t1"
    assert csr_common_name((out / "pad-t2" / "tls" / "device.csr").read_bytes()) == "pad-t2"
    csr, key = (tls / "device.csr").read_bytes(), (tls / "device.key").read_bytes()
    assert [o.status for o in provision(fleet, site, out)] == ["unchanged", "unchanged"]
    assert (tls / "device.csr").read_bytes() == csr and (tls / "device.key").read_bytes() == key
    # issue 14: the file names where the bundle puts each TLS file (the template's tls_ca kept)
    mqtt = tomllib.loads((out / "pad-t1" / "evaluator.toml").read_text(encoding="utf-8"))["mqtt"]
    assert (mqtt["tls_key"], mqtt["tls_cert"], mqtt["tls_ca"]) == (
        "tls/device.key", "tls/device.crt", "city/ca.crt")  # fmt: skip


def test_an_mqtts_row_without_a_template_names_the_city_ca_of_its_bundle(tmp_path: Path) -> None:
    fleet = sheet(tmp_path, ["pad-t1,,H,1号窗口,440500,mqtts://mqtt.city.example,,,,,,",
                             "pad-p1,,H,2号窗口,440500,mqtt://plain.local,,,,,,"])  # fmt: skip
    out = tmp_path / "out"
    assert [o.status for o in provision(fleet, None, out)] == ["created", "created"]
    mqtt = tomllib.loads((out / "pad-t1" / "evaluator.toml").read_text(encoding="utf-8"))["mqtt"]
    assert (mqtt["tls_key"], mqtt["tls_cert"], mqtt["tls_ca"]) == (
        "tls/device.key", "tls/device.crt", "tls/ca.crt")  # fmt: skip
    plain = tomllib.loads((out / "pad-p1" / "evaluator.toml").read_text(encoding="utf-8"))
    assert not any(k.startswith("tls_") for k in plain["mqtt"])
    assert not (out / "pad-p1" / "tls").exists()


def test_a_sheet_with_unknown_columns_writes_nothing(
    tmp_path: Path, site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = tmp_path / "fleet.csv"
    fleet.write_text("device_id,windw,screen.dpix\npad-1,1号窗口,170\n", encoding="utf-8")
    out = tmp_path / "out"
    assert main(["provision", str(fleet), "--template", str(site), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{fleet}: row 1: unknown column 'windw' (did you mean window?)" in err
    assert f"{fleet}: row 1: unknown column 'screen.dpix'" in err
    assert not out.exists()


def test_excel_sheets_in_utf8_with_a_bom_or_in_gb18030_read_the_same(
    tmp_path: Path, site: Path
) -> None:
    text = "\n".join([HEADER, GOOD[2]]) + "\n"
    for name, data in (("bom.csv", b"\xef\xbb\xbf" + text.encode()),
                       ("gbk.csv", text.encode("gb18030"))):  # fmt: skip
        (tmp_path / name).write_bytes(data)
        [outcome] = provision(tmp_path / name, site, tmp_path / name.replace(".", "-"))
        assert outcome.status == "created", outcome.problems
        made = (tmp_path / name.replace(".", "-") / "pad-03" / "evaluator.toml").read_text()
        assert 'window = "自助终端区"' in made


def test_a_template_value_is_checked_in_every_row_and_named_as_the_template_s(
    tmp_path: Path,
) -> None:
    bad = tmp_path / "site.toml"
    bad.write_text("[mqtt]\nport = 70000\n", encoding="utf-8")
    outcomes = provision(sheet(tmp_path, GOOD[3:5]), bad, tmp_path / "out")
    assert [o.problems for o in outcomes] == [
        [f"row {n}, from the template site.toml: mqtt.port = 70000: expected an integer from 1 "
         "to 65535"] for n in (2, 3)
    ]  # fmt: skip
    assert not (tmp_path / "out").exists()
    bad.write_text("[mqtt\n", encoding="utf-8")
    with pytest.raises(ProvisionError, match=r"site\.toml: cannot use the template"):
        provision(sheet(tmp_path, GOOD[:1]), bad, tmp_path / "out")


def test_a_full_disk_stops_with_the_reason_and_leaves_no_half_written_file(
    tmp_path: Path, site: Path
) -> None:
    """A card that fills up mid-run (here: a file size limit, which fails ``write()`` the way a
    full disk does) ends the run with exit 2 and the reason, not a traceback, and leaves no
    temporary file behind; a re-run with room writes everything."""
    import resource
    import signal
    import subprocess
    import sys

    fleet = sheet(tmp_path, GOOD[:3])
    out = tmp_path / "out"

    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG from write(), as ENOSPC would
        resource.setrlimit(resource.RLIMIT_FSIZE, (700, resource.RLIM_INFINITY))

    argv = [sys.executable, "-m", "evaluator", "provision", str(fleet), "--template", str(site),
            "--out", str(out)]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, preexec_fn=small_disk,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "cannot write: File too large; rows before row 2 are written" in done.stderr
    assert [p.name for p in tmp_path.rglob(".*")] == []  # no .provision-*.toml, no .x.tmp
    assert [o.status for o in provision(fleet, site, out)] == ["created"] * 3
