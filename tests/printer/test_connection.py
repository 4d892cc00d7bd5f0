"""printer.connection: specs from config, and each kind against a real device stand-in."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from printer import commands as cmd
from printer.connection import (
    DUMMY_KEEP,
    ConnectionSpec,
    DummyConnection,
    FileConnection,
    NetworkConnection,
    SerialConnection,
    UsbConnection,
    open_printer,
)
from printer.errors import PrinterConfigError, PrinterOffline
from printer.status import HEALTHY
from tests.conftest import PtyPair
from tests.printer.fakes import FakePrinter


@pytest.mark.parametrize(
    ("table", "says"),
    [
        ({"kind": "usb", "vendor_id": 0x0416, "product_id": 0x5011, "timeout": 0}, "forever"),
        ({"kind": "usb"}, "vendor_id must be"),
        ({"kind": "usb", "vendor_id": 1, "product_id": 1, "out_ep": 0}, "out_ep"),
        ({"kind": "network"}, "host must"),
        ({"kind": "network", "host": "p", "port": 0}, "port must"),
        ({"kind": "file"}, "path must"),
        ({"kind": "serial", "path": "/dev/ttyUSB0", "baudrate": "fast"}, "baudrate"),
        ({"kind": "bluetooth"}, "kind must be one of"),
        ({"kind": "dummy", "status_timeout": -1}, "status_timeout"),
        ({"kind": "dummy", "colour": 1}, "unknown printer connection key 'colour'"),
    ],
)
def test_a_bad_spec_is_refused_naming_the_problem(table: dict[str, object], says: str) -> None:
    with pytest.raises(PrinterConfigError, match=says):
        ConnectionSpec.from_config(table)


def test_every_problem_at_once() -> None:
    with pytest.raises(PrinterConfigError) as caught:
        ConnectionSpec.from_config({"kind": "network", "port": 70000, "timeout": 0, "x": 1})
    assert len(caught.value.problems) == 4


@pytest.mark.parametrize(
    ("table", "kind"),
    [
        ({}, DummyConnection),
        ({"kind": "usb", "vendor_id": 0x0416, "product_id": 0x5011}, UsbConnection),
        ({"kind": "serial", "path": "/dev/ttyUSB0"}, SerialConnection),
        ({"kind": "network", "host": "192.0.2.10"}, NetworkConnection),
        ({"kind": "file", "path": "/dev/usb/lp0"}, FileConnection),
    ],
)
def test_open_printer_picks_the_kind_without_touching_the_device(
    table: dict[str, object], kind: type
) -> None:
    connection = open_printer(ConnectionSpec.from_config(table))
    assert type(connection) is kind
    assert connection.spec.timeout > 0  # never 0 = forever


def test_the_dummy_keeps_every_byte_and_answers_as_a_healthy_printer() -> None:
    dummy = DummyConnection()
    assert dummy.output == b""
    dummy.write(b"\x1b@abc")
    dummy.write(b"\n")
    assert dummy.output == b"\x1b@abc\n"
    assert {n: dummy.query(cmd.status_request(n)) for n in HEALTHY} == HEALTHY
    del dummy.replies[4]
    assert dummy.query(cmd.status_request(4)) is None


def test_the_dummy_forgets_old_receipts_past_a_mebibyte_keeping_the_last() -> None:
    dummy = DummyConnection()
    for n in range(40):
        dummy.write(bytes([n]) * 100_000)
    assert len(dummy.output) <= DUMMY_KEEP + 100_000
    assert dummy.output.endswith(bytes([39]) * 100_000)


def test_a_fifo_nobody_reads_fails_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "lp0"
    os.mkfifo(fifo)
    connection = FileConnection(ConnectionSpec(kind="file", path=str(fifo)))
    with pytest.raises(PrinterOffline, match="nobody reads"):
        connection.open()


def test_a_full_device_says_so_and_a_missing_one_too(tmp_path: Path) -> None:
    full = FileConnection(ConnectionSpec(kind="file", path="/dev/full"))
    with pytest.raises(PrinterOffline, match="no space"):
        full.write(b"\x1b@")
    full.close()
    gone = FileConnection(ConnectionSpec(kind="file", path=str(tmp_path / "lp9")))
    with pytest.raises(PrinterOffline, match="no such device"):
        gone.open()
    assert gone.query(cmd.status_request(1)) is None  # a device file has no back channel


def test_a_refused_connection_is_offline_with_the_reason() -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
    try:
        spec = ConnectionSpec(kind="network", host="127.0.0.1", port=holder.getsockname()[1])
        with pytest.raises(PrinterOffline, match="refused"):
            NetworkConnection(spec).open()
    finally:
        holder.close()


def test_a_network_printer_gets_the_bytes_and_answers_status() -> None:
    printer = FakePrinter()
    printer.listen()
    printer.replies[4] = 0x72  # paper out
    try:
        spec = ConnectionSpec(kind="network", host="127.0.0.1", port=printer.port)
        connection = NetworkConnection(spec)
        assert connection.query(cmd.status_request(4)) == 0x72
        connection.write(cmd.INIT + b"hello\n")
        connection.close()
        assert printer.wait_for(lambda p: p.data() == cmd.INIT + b"hello\n")
    finally:
        printer.close()


def test_a_serial_printer_gets_the_bytes_and_a_silent_one_gives_no_answer(
    pty_pair: PtyPair,
) -> None:
    spec = ConnectionSpec(kind="serial", path=pty_pair.device, status_timeout=0.2)
    connection = SerialConnection(spec)
    far = os.open(pty_pair.counter, os.O_RDWR | os.O_NOCTTY)
    try:
        connection.write(cmd.INIT + "评价".encode("gb18030"))
        got = b""
        while len(got) < 6:
            got += os.read(far, 64)
        assert got == cmd.INIT + "评价".encode("gb18030")
        assert connection.query(cmd.status_request(1)) is None  # nobody answers
    finally:
        connection.close()
        os.close(far)


def test_a_usb_printer_that_is_not_there_is_offline_naming_its_ids() -> None:
    spec = ConnectionSpec(kind="usb", vendor_id=0x0416, product_id=0x5011, timeout=1)
    with pytest.raises(PrinterOffline, match="usb 0416:5011"):
        UsbConnection(spec).open()
