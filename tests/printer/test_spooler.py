"""printer.spooler: printing never in the citizen's path, against printers that hang, fail or
vanish — a FIFO that nobody reads or that stops reading, a full device, a TCP printer that stops
reading or refuses connections, paper out and cover open — and the receipt printed exactly once
when the printer comes back.

"Returns at once" is proved with events, not timings: ``submit`` is called while the worker is
known to be blocked inside a write that cannot finish (nobody reads), and the status read right
after it still says ``writing`` with nothing printed.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from evaluator.rules.backoff import Backoff
from printer.connection import Connection, ConnectionSpec, DummyConnection, open_printer
from printer.decode import decode
from printer.profile import PrinterProfile
from printer.render import RESYNC
from printer.spooler import PrinterStatus, PrintSpooler
from printer.status import HEALTHY, NO_ANSWER
from tests.printer.fakes import PATIENCE, FakePrinter, PipeReader, cuts, qr_texts, receipt

#: A receipt big enough (about 69 KB) that no pipe or socket buffer in these tests holds it.
BIG = PrinterProfile(paper="80mm", text="raster", qr="image")
PAPER_OUT = {1: 0x1A, 2: 0x32, 4: 0x72}
COVER_OPEN = {1: 0x1A, 2: 0x16, 4: 0x12}


@pytest.fixture
def spoolers() -> Iterator[Callable[..., PrintSpooler]]:
    made: list[PrintSpooler] = []

    def make(
        connection: Connection, profile: PrinterProfile | None = None, **kw: object
    ) -> PrintSpooler:
        kw.setdefault("backoff", Backoff(0.02, cap=0.2, jitter=0))
        kw.setdefault("poll_interval", 0)
        spooler = PrintSpooler(connection, profile or PrinterProfile(), **kw)  # type: ignore[arg-type]
        made.append(spooler)
        return spooler

    yield make
    for spooler in made:
        spooler.stop(timeout=10)


@pytest.fixture
def fake() -> Iterator[FakePrinter]:
    printer = FakePrinter()
    yield printer
    printer.close()


def until(spooler: PrintSpooler, predicate: Callable[[PrinterStatus], bool]) -> PrinterStatus:
    assert spooler.wait_until(predicate, PATIENCE), f"never happened; status {spooler.status}"
    return spooler.status


def failed(state: str, says: str) -> Callable[[PrinterStatus], bool]:
    """A first attempt failed in ``state`` and the receipt waits for the next."""
    return lambda s: s.state == state and says in s.detail and s.phase == "waiting"


def net(port: int, **kw: object) -> Connection:
    return open_printer(
        ConnectionSpec(kind="network", host="127.0.0.1", port=port, status_timeout=0.2, **kw)  # type: ignore[arg-type]
    )


def urls(data: bytes) -> list[str]:
    return qr_texts(decode(data))


# -- the stand-in ------------------------------------------------------------------------------


def test_the_dummy_prints_a_receipt_once_and_the_printer_says_ok(spoolers) -> None:
    dummy = DummyConnection()
    spooler = spoolers(dummy)
    spooler.start()
    made = receipt(1)
    job = spooler.submit(made)
    assert isinstance(job, str) and job
    status = until(spooler, lambda s: s.printed == 1)
    assert (status.state, status.pending, status.dropped) == ("ok", 0, 0)
    assert cuts(dummy.output) == 1 and urls(dummy.output) == [made.qr_url]


def test_submit_takes_only_receipts(spoolers) -> None:
    with pytest.raises(TypeError):
        spoolers(DummyConnection()).submit({"qr_url": "x"})  # type: ignore[arg-type]


# -- a device file: a FIFO, a full device -------------------------------------------------------


def test_submit_returns_while_the_fifo_reader_has_stopped_reading(spoolers, tmp_path: Path) -> None:
    fifo = tmp_path / "lp0"
    os.mkfifo(fifo)
    reader = PipeReader(str(fifo))  # open, 4 KB buffer, not reading
    try:
        spec = ConnectionSpec(kind="file", path=str(fifo), timeout=600)
        spooler = spoolers(open_printer(spec), BIG)
        spooler.start()
        first, second = receipt(1), receipt(2)
        spooler.submit(first)
        until(spooler, lambda s: s.phase == "writing")  # blocked: the pipe is full
        spooler.submit(second)
        status = spooler.status
        assert (status.phase, status.printed, status.pending) == ("writing", 0, 2)

        reader.start()  # the printer takes data again
        status = until(spooler, lambda s: s.printed == 2)
        assert status.state == "unknown"  # a device file has no back channel
        assert reader.wait_for(lambda d: cuts(d) == 2)
        assert urls(reader.data()) == [first.qr_url, second.qr_url]
    finally:
        reader.close()


def test_a_fifo_nobody_reads_is_offline_then_prints_once_when_read(
    spoolers, tmp_path: Path
) -> None:
    fifo = tmp_path / "lp0"
    os.mkfifo(fifo)
    spooler = spoolers(open_printer(ConnectionSpec(kind="file", path=str(fifo))))
    spooler.start()
    made = receipt(3)
    spooler.submit(made)
    status = until(spooler, failed("offline", "nobody reads"))
    assert (status.pending, status.printed) == (1, 0)

    reader = PipeReader(str(fifo))
    try:
        reader.start()
        spooler.retry_now()
        until(spooler, lambda s: s.printed == 1 and s.pending == 0)
        assert reader.wait_for(lambda d: cuts(d) == 1)
        assert urls(reader.data()) == [made.qr_url]
    finally:
        reader.close()


def test_a_fifo_that_stops_mid_receipt_goes_offline_and_prints_it_whole_once(
    spoolers, tmp_path: Path
) -> None:
    fifo = tmp_path / "lp0"
    os.mkfifo(fifo)
    reader = PipeReader(str(fifo))
    try:
        spec = ConnectionSpec(kind="file", path=str(fifo), timeout=0.3)
        spooler = spoolers(open_printer(spec), BIG)
        spooler.start()
        made = receipt(4)
        spooler.submit(made)
        until(spooler, failed("offline", "took no data"))

        reader.start()
        spooler.retry_now()
        until(spooler, lambda s: s.printed == 1)
        assert reader.wait_for(lambda d: cuts(d) == 1)
        data = reader.data()
        assert RESYNC in data  # the torn receipt's last command was completed first
        assert cuts(data) == 1 and made.qr_url in urls(data)
    finally:
        reader.close()


def test_a_full_device_is_offline_then_prints_once_when_there_is_room(
    spoolers, tmp_path: Path
) -> None:
    device = tmp_path / "lp0"
    device.symlink_to("/dev/full")  # writes fail with ENOSPC, like a full tmpfs
    spooler = spoolers(open_printer(ConnectionSpec(kind="file", path=str(device))))
    spooler.start()
    made = receipt(5)
    spooler.submit(made)
    until(spooler, failed("offline", "no space"))

    paper = tmp_path / "paper.bin"
    paper.touch()
    (tmp_path / "lp0.new").symlink_to(paper)
    os.replace(tmp_path / "lp0.new", device)  # the "printer" has room again
    spooler.retry_now()
    until(spooler, lambda s: s.printed == 1)
    assert cuts(paper.read_bytes()) == 1 and urls(paper.read_bytes()) == [made.qr_url]


# -- a network printer ------------------------------------------------------------------------


def test_submit_returns_while_the_socket_has_stopped_reading(spoolers, fake: FakePrinter) -> None:
    fake.listen()
    fake.stall()  # connections complete in the backlog, nothing is read
    spooler = spoolers(net(fake.port, timeout=600), BIG)
    spooler.start()
    first, second = receipt(6), receipt(7)
    spooler.submit(first)
    until(spooler, lambda s: s.phase == "writing")
    spooler.submit(second)
    status = spooler.status
    assert (status.phase, status.printed, status.pending) == ("writing", 0, 2)

    fake.resume()
    status = until(spooler, lambda s: s.printed == 2)
    assert fake.wait_for(lambda f: cuts(f.data()) == 2)
    assert urls(fake.data()) == [first.qr_url, second.qr_url]
    assert not fake.errors


def test_a_socket_that_stops_reading_goes_offline_and_the_receipt_prints_whole_once(
    spoolers, fake: FakePrinter
) -> None:
    fake.listen()
    fake.stall()
    spooler = spoolers(net(fake.port, timeout=0.3), BIG)
    spooler.start()
    made = receipt(8)
    spooler.submit(made)
    until(spooler, failed("offline", "took no data"))

    fake.resume()
    spooler.retry_now()
    status = until(spooler, lambda s: s.printed == 1)
    spooler.stop(timeout=10)
    assert fake.wait_for(lambda f: f.settled() and cuts(f.data()) >= 1)
    assert cuts(fake.data()) == 1 and made.qr_url in urls(fake.data())
    assert status.state == "ok" and not fake.errors


def test_a_refused_connection_is_offline_until_the_printer_listens(spoolers) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))  # the port is ours, nothing listens: connections are refused
    printer = FakePrinter(holder)
    try:
        spooler = spoolers(net(printer.port))
        spooler.start()
        made = receipt(9)
        spooler.submit(made)
        until(spooler, failed("offline", "refused"))

        printer.listen()
        spooler.retry_now()
        until(spooler, lambda s: s.printed == 1 and s.state == "ok")
        assert printer.wait_for(lambda f: cuts(f.data()) == 1)
        assert urls(printer.data()) == [made.qr_url]
    finally:
        printer.close()


@pytest.mark.parametrize(
    ("replies", "state"), [(PAPER_OUT, "paper_out"), (COVER_OPEN, "cover_open")]
)
def test_paper_out_or_cover_open_holds_the_receipt_until_fixed(
    spoolers, fake: FakePrinter, replies: dict[int, int], state: str
) -> None:
    fake.replies = dict(replies)
    fake.listen()
    spooler = spoolers(net(fake.port))
    spooler.start()
    made = receipt(10)
    spooler.submit(made)
    status = until(spooler, lambda s: s.state == state and s.phase == "waiting")
    assert (status.pending, status.printed) == (1, 0)
    assert fake.data() == b""  # asked, not sent: the receipt is held, not lost in the printer

    fake.replies = dict(HEALTHY)  # paper loaded, cover closed
    spooler.retry_now()
    until(spooler, lambda s: s.printed == 1 and s.state == "ok")
    assert fake.wait_for(lambda f: cuts(f.data()) == 1)
    assert urls(fake.data()) == [made.qr_url]


def test_a_printer_that_never_answers_status_still_prints_and_is_not_called_ok(
    spoolers, fake: FakePrinter
) -> None:
    fake.replies = {}
    fake.listen()
    spooler = spoolers(net(fake.port))
    spooler.start()
    spooler.submit(receipt(11))
    status = until(spooler, lambda s: s.printed == 1)
    assert status.state == "offline" and NO_ANSWER in status.detail
    assert fake.wait_for(lambda f: cuts(f.data()) == 1)


def test_stop_cuts_a_hung_socket_write_short(spoolers, fake: FakePrinter) -> None:
    fake.listen()
    fake.stall()
    spooler = spoolers(net(fake.port, timeout=600), BIG)
    spooler.start()
    spooler.submit(receipt(12))
    until(spooler, lambda s: s.phase == "writing")
    spooler.stop(timeout=PATIENCE)
    assert not spooler.running


def test_stop_cuts_a_hung_device_file_write_short(spoolers, tmp_path: Path) -> None:
    fifo = tmp_path / "lp0"
    os.mkfifo(fifo)
    reader = PipeReader(str(fifo))  # never reads
    try:
        spec = ConnectionSpec(kind="file", path=str(fifo), timeout=600)
        spooler = spoolers(open_printer(spec), BIG)
        spooler.start()
        spooler.submit(receipt(27))
        until(spooler, lambda s: s.phase == "writing")
        spooler.stop(timeout=PATIENCE)
        assert not spooler.running
    finally:
        reader.close()


# -- states without a fault -------------------------------------------------------------------


def test_no_back_channel_is_unknown_after_printing_never_paper_out(
    spoolers, tmp_path: Path
) -> None:
    paper = tmp_path / "lp0"
    paper.touch()
    spooler = spoolers(open_printer(ConnectionSpec(kind="file", path=str(paper))))
    spooler.start()
    spooler.submit(receipt(13))
    status = until(spooler, lambda s: s.printed == 1)
    assert status.state == "unknown" and "no status back channel" in status.detail

    quiet = spoolers(DummyConnection(), PrinterProfile(status=False))
    quiet.start()
    quiet.submit(receipt(14))
    assert until(quiet, lambda s: s.printed == 1).state == "unknown"


def test_an_idle_printer_is_asked_again_until_it_is_ok(spoolers) -> None:
    dummy = DummyConnection()
    dummy.replies = dict(PAPER_OUT)
    spooler = spoolers(dummy, poll_interval=0.02)
    spooler.start()
    until(spooler, lambda s: s.state == "paper_out")
    dummy.replies = dict(HEALTHY)
    status = until(spooler, lambda s: s.state == "ok")
    assert (status.pending, status.printed) == (0, 0)


# -- what is kept, for how long -----------------------------------------------------------------


def test_a_receipt_held_past_max_age_is_dropped_never_printed(spoolers) -> None:
    now = [1000.0]
    dummy = DummyConnection()
    dummy.replies = dict(PAPER_OUT)
    spooler = spoolers(dummy, max_age=300, monotonic=lambda: now[0])
    spooler.start()
    stale, fresh = receipt(15), receipt(16)
    spooler.submit(stale)
    until(spooler, lambda s: s.state == "paper_out" and s.phase == "waiting")
    now[0] += 301  # the citizen left long ago
    spooler.retry_now()
    status = until(spooler, lambda s: s.dropped == 1)
    assert (status.pending, status.printed) == (0, 0)

    dummy.replies = dict(HEALTHY)
    spooler.submit(fresh)
    until(spooler, lambda s: s.printed == 1)
    assert urls(dummy.output) == [fresh.qr_url]  # the stale one never came out


def test_beyond_max_pending_the_oldest_is_dropped(spoolers) -> None:
    dummy = DummyConnection()
    spooler = spoolers(dummy, max_pending=2)
    made = [receipt(n) for n in (17, 18, 19)]
    for r in made:
        spooler.submit(r)
    assert (spooler.status.pending, spooler.status.dropped) == (2, 1)
    spooler.start()
    until(spooler, lambda s: s.printed == 2)
    assert urls(dummy.output) == [made[1].qr_url, made[2].qr_url]


def test_the_spool_directory_keeps_the_queue_across_a_restart(spoolers, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    held = DummyConnection()
    held.replies = dict(PAPER_OUT)
    before = spoolers(held, spool_dir=spool)
    before.start()
    made = receipt(20, serials=2)
    before.submit(made)
    until(before, lambda s: s.state == "paper_out" and s.phase == "waiting")
    before.stop(timeout=PATIENCE)
    (kept,) = spool.glob("*.json")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert json.loads(kept.read_text(encoding="utf-8"))["receipt"] == made.to_json()

    dummy = DummyConnection()
    after = spoolers(dummy, spool_dir=spool)
    after.start()
    until(after, lambda s: s.printed == 1)
    assert urls(dummy.output) == [made.qr_url]
    assert list(spool.iterdir()) == []


def test_spooled_receipts_too_old_future_dated_or_unreadable_are_not_printed(
    spoolers, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    now = time.time()

    def put(name: str, queued: float, n: int) -> None:
        body = {"id": name, "queued_at": queued, "receipt": receipt(n).to_json()}
        (spool / f"{name}.json").write_text(json.dumps(body), encoding="utf-8")

    put("1-old", now - 1000, 21)
    put("2-future", now + 1000, 22)  # a clock that jumped: its age is unknown
    put("3-good", now - 1, 23)
    (spool / "4-bad.json").write_text("{", encoding="utf-8")
    (spool / "5-cut.tmp").write_text("{", encoding="utf-8")
    dummy = DummyConnection()
    spooler = spoolers(dummy, spool_dir=spool, max_age=300)
    spooler.start()
    status = until(spooler, lambda s: s.printed == 1)
    assert status.dropped == 2
    assert urls(dummy.output) == [receipt(23).qr_url]
    assert sorted(p.name for p in spool.iterdir()) == ["4-bad.bad"]


# -- the worker survives ------------------------------------------------------------------------


def test_a_receipt_that_cannot_be_built_is_dropped_and_the_worker_goes_on(
    spoolers, tmp_path: Path
) -> None:
    profile = PrinterProfile(text="raster", font=str(tmp_path / "missing.ttf"))
    spooler = spoolers(DummyConnection(), profile)
    spooler.start()
    spooler.submit(receipt(24))
    status = until(spooler, lambda s: s.dropped == 1)
    assert "could not be built" in status.detail and "missing.ttf" in status.detail
    spooler.submit(receipt(25))
    until(spooler, lambda s: s.dropped == 2)
    assert spooler.running


def test_a_failing_on_change_callback_does_not_stop_printing(spoolers) -> None:
    def broken(status: PrinterStatus) -> None:
        raise RuntimeError("the wiring's callback is broken")

    dummy = DummyConnection()
    spooler = spoolers(dummy, on_change=broken)
    spooler.start()
    spooler.submit(receipt(26))
    until(spooler, lambda s: s.printed == 1)
    assert cuts(dummy.output) == 1


def test_the_receipt_being_written_is_never_also_dropped(spoolers) -> None:
    """A review found it: a receipt trimmed from the queue while the worker was writing it was
    counted dropped and printed (and the pad then showed its QR on screen for nothing)."""
    import threading

    class Slow(DummyConnection):
        def __init__(self) -> None:
            super().__init__()
            self.writing = threading.Event()
            self.release = threading.Event()

        def write(self, data: bytes) -> None:
            self.writing.set()
            assert self.release.wait(PATIENCE)
            super().write(data)

    slow = Slow()
    spooler = spoolers(slow, max_pending=1)
    spooler.start()
    first, second, third = (receipt(n) for n in (21, 22, 23))
    spooler.submit(first)
    assert slow.writing.wait(PATIENCE)  # the worker is inside the write of the first
    spooler.submit(second)
    spooler.submit(third)  # one too many waiting: the second goes, not the one being written
    assert spooler.status.dropped == 1
    slow.release.set()
    status = until(spooler, lambda s: s.printed == 2)
    assert (status.printed, status.dropped) == (2, 1)
    assert urls(slow.output) == [first.qr_url, third.qr_url]
