"""journald's native protocol, against a real unix datagram socket standing in for journald."""

from __future__ import annotations

import array
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from evaluator.journal import (
    JournalHandler,
    decode_fields,
    encode_fields,
    last_error,
    make_handler,
    under_systemd,
    watch_errors,
)


@pytest.fixture
def journald(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "journal.socket")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    yield sock, path
    sock.close()


def receive(sock: socket.socket) -> dict[str, str]:
    """One entry as journald reads it: the datagram, or the memfd passed with it."""
    fds = array.array("i")
    data, ancdata, _flags, _addr = sock.recvmsg(1 << 20, socket.CMSG_LEN(4))
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    if fds:
        fd = fds[0]
        try:
            size = os.fstat(fd).st_size
            data = os.pread(fd, size, 0)
        finally:
            os.close(fd)
    return dict(decode_fields(data))


def logger(handler: logging.Handler, name: str = "evaluator.app") -> logging.Logger:
    log = logging.getLogger(name)
    log.setLevel(logging.DEBUG)
    log.addHandler(handler)
    return log


def test_an_entry_carries_every_field(journald: tuple[socket.socket, str]) -> None:
    sock, path = journald
    handler = JournalHandler(path=path, device_id="440500-hall1-w12")
    log = logger(handler)
    try:
        log.info("cases %s: %s", "S-1", "rated",
                 extra={"fields": {"presentation_id": "p-1", "OUTCOME": "rated"}})  # fmt: skip
        entry = receive(sock)
    finally:
        log.removeHandler(handler)
        handler.close()
    assert entry["MESSAGE"] == "cases S-1: rated"
    assert entry["PRIORITY"] == "6"
    assert entry["SYSLOG_IDENTIFIER"] == "evaluator"
    assert entry["CODE_FILE"] == __file__
    assert entry["CODE_FUNC"] == "test_an_entry_carries_every_field"
    assert int(entry["CODE_LINE"]) > 0
    assert entry["LOGGER"] == "evaluator.app"
    assert entry["THREAD"] == "MainThread"
    assert entry["DEVICE_ID"] == "440500-hall1-w12"
    assert entry["PRESENTATION_ID"] == "p-1" and entry["OUTCOME"] == "rated"


def test_multiline_and_huge_messages_arrive_whole(journald: tuple[socket.socket, str]) -> None:
    sock, path = journald
    handler = JournalHandler(path=path)
    log = logger(handler)
    try:
        try:
            raise ValueError("disk full")
        except ValueError:
            log.exception("could not store\nthe rating")
        entry = receive(sock)
        assert entry["MESSAGE"].startswith("could not store\nthe rating\nTraceback")
        assert "ValueError: disk full" in entry["MESSAGE"] and entry["PRIORITY"] == "3"
        big = "字" * 400_000  # 1.2 MB: more than a datagram takes, sent in a memfd
        log.warning(big)
        entry = receive(sock)
        assert entry["MESSAGE"] == big and entry["PRIORITY"] == "4"
    finally:
        log.removeHandler(handler)
        handler.close()


def test_never_a_level_nor_an_identity(
    journald: tuple[socket.socket, str], capsys: pytest.CaptureFixture[str]
) -> None:
    sock, path = journald
    handler = JournalHandler(path=path)
    log = logger(handler)
    try:
        log.info("rated", extra={"fields": {"LEVEL": "very_dissatisfied", "SCORE": 0,
                                            "NOTE": "11010519491231002X", "OUTCOME": "rated",
                                            "MESSAGE": "forged", "bad name": "x"}})  # fmt: skip
        entry = receive(sock)
    finally:
        log.removeHandler(handler)
        handler.close()
    assert entry["OUTCOME"] == "rated" and entry["MESSAGE"] == "rated"
    assert not {"LEVEL", "SCORE", "NOTE", "BAD NAME"} & set(entry)
    assert "11010519491231002X" not in str(entry)
    err = capsys.readouterr().err
    assert "journal field LEVEL dropped" in err and "11010519491231002X" not in err


def test_without_journald_it_logs_to_stderr(tmp_path: Path) -> None:
    missing = str(tmp_path / "no.socket")
    assert not under_systemd({}, missing)
    assert under_systemd({"JOURNAL_STREAM": "8:1234"}, missing)
    handler = make_handler("x", environ={"JOURNAL_STREAM": "8:1234"}, socket_path=missing)
    assert not isinstance(handler, JournalHandler)
    (tmp_path / "bound").mkdir()
    live = str(tmp_path / "bound" / "journal.socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(live)
        handler = make_handler("x", environ={}, socket_path=live)
        assert isinstance(handler, JournalHandler)
        handler.close()


def test_a_journal_that_went_away_falls_back_to_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    handler = JournalHandler(path=str(tmp_path / "gone.socket"))
    log = logger(handler, "evaluator.test_gone")
    try:
        log.error("storage fault: disk full")
    finally:
        log.removeHandler(handler)
        handler.close()
    assert "storage fault: disk full" in capsys.readouterr().err


def test_encoding_round_trips_and_the_last_error_is_kept() -> None:
    fields = [("A", "x=y"), ("B", "two\nlines"), ("C", "")]
    assert decode_fields(encode_fields(fields)) == fields
    watch_errors()
    logging.getLogger("evaluator.x").error("the printer is offline")
    assert last_error() == "evaluator.x: the printer is offline"
