"""Attacks on ``evaluator provision`` (issue 9): sheets whose columns or names would make a
pad's file say something other than the row — real files, real keys, the real check."""

from __future__ import annotations

import csv
import re
import tomllib
from pathlib import Path

import pytest

from evaluator.provision import NAMED_KEYS, ProvisionError, provision


@pytest.mark.parametrize(
    ("named", "column", "cell"),
    [("device_id", "device.id", "other-pad"), ("brokers", "mqtt.urls", '["mqtt://x.local"]'),
     ("printer", "printer.port", "9101"), ("buttons", "buttons.very_satisfied", "5"),
     ("hall", "receipt.hall", "另一个大厅")],
)  # fmt: skip
def test_a_key_column_that_a_named_column_sets_is_refused(
    tmp_path: Path, named: str, column: str, cell: str
) -> None:
    """``device.id`` beside ``device_id`` made pad-01's folder, key and devices.csv line with
    a config naming other-pad; any such pair had one cell silently win over the other."""
    cells = {"device_id": "pad-01", "area_code": "440500", "brokers": "mqtt://b.local",
             "printer": "network:192.168.1.5:9100", "buttons": "17,27,22,23,24",
             "hall": "大厅", column: cell}  # fmt: skip
    assert column.partition(".")[::2] in [k for keys in NAMED_KEYS.values() for k in keys]
    fleet = tmp_path / "fleet.csv"
    with fleet.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(cells)
        writer.writerow(cells.values())
    told = re.escape(f"column '{column}' sets what column '{named}'")
    with pytest.raises(ProvisionError, match=told):
        provision(fleet, None, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_device_id_alone_needs_no_named_column_besides(tmp_path: Path) -> None:
    """``device.id`` is refused even where no ``device_id`` column is (that is refused too)."""
    fleet = tmp_path / "fleet.csv"
    fleet.write_text("device.id,area_code\npad-01,440500\n", encoding="utf-8")
    with pytest.raises(ProvisionError, match=r"column 'device\.id' sets what column 'device_id'"):
        provision(fleet, None, tmp_path / "out")


def test_a_sheet_name_with_a_line_break_cannot_add_settings(tmp_path: Path) -> None:
    """The header comment names the sheet: a line break in its name was a line of TOML."""
    fleet = tmp_path / 'x\n[tech]\npin = "0000"\n#.csv'
    fleet.write_text("device_id,area_code\npad-01,440500\n", encoding="utf-8")
    outcomes = provision(fleet, None, tmp_path / "out")
    assert [o.status for o in outcomes] == ["created"]
    written = (tmp_path / "out" / "pad-01" / "evaluator.toml").read_text(encoding="utf-8")
    assert "tech" not in tomllib.loads(written)
    assert all(line.startswith("#") for line in written.split("\n[device]")[0].splitlines())
