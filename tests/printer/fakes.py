"""Real parts standing in for printers: a TCP ESC/POS printer on localhost, a FIFO reader, and
sample receipts.  Nothing here mocks the code under test: the printers are sockets and pipes the
spooler really writes to, and what they received is read back with a real QR decoder."""

from __future__ import annotations

import contextlib
import datetime
import os
import select
import socket
import threading
from collections.abc import Callable

import zxingcpp

from printer.decode import Cut, Element, QrCode, Raster, decode, next_token
from printer.qr import qr_image, qr_matrix
from printer.receipt import Receipt
from printer.status import HEALTHY

#: Seconds any wait in the printer tests may take before the test fails (never a pass/fail
#: threshold on speed: an event that does not come within it is a hang).
PATIENCE = 30.0


def receipt(n: int = 1, *, url: str | None = None, serials: int = 1) -> Receipt:
    """A receipt whose QR URL names case ``n`` (about 120 characters, like a signed URL)."""
    if url is None:
        url = f"https://hcp.example.org/r/v1/{n:06d}?c=SZ440500&t=1795744800&e=7d&s=" + (
            "QmFzZTY0VXJsU2lnbmF0dXJlT2ZUaGVEZXZpY2VLZXkxMjM0NTY3ODk"
        )
    return Receipt(
        hall="汕头市政务服务中心",
        window="A12",
        matter_name="居民身份证换领",
        serials=tuple(f"44050020261127{n:05d}{i}" for i in range(serials)),
        clerk_name="陈晓明",
        clerk_id="A1023",
        issued_at=datetime.datetime(2026, 11, 27, 10, 21),
        qr_url=url,
        short_code=f"K7QD-{n:04d}",
    )


def qr_texts(elements: list[Element]) -> list[str]:
    """Every QR a real decoder (zxing-cpp) reads on the paper ``elements`` describe."""
    found: list[str] = []
    for element in elements:
        if isinstance(element, QrCode):
            image = qr_image(qr_matrix(element.data, element.ecc), element.module)
        elif isinstance(element, Raster):
            image = element.image
        else:
            continue
        found += [
            r.text for r in zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
        ]
    return found


def complete(data: bytes) -> bytes:
    """The part of ``data`` that ends between two commands (a reader may be mid-command)."""
    pos = 0
    while (token := next_token(data, pos)) is not None:
        pos = token.end
    return data[:pos]


def cuts(data: bytes) -> int:
    """Receipts that came out whole (each ends with a cut) in what was received so far."""
    return sum(isinstance(e, Cut) for e in decode(complete(data)))


class FakePrinter:
    """A raw TCP printer (port 9100 style) on localhost.

    It serves one connection at a time, in the order they came, reading each to its end (as a
    printer does); ``stall()`` makes it stop accepting and reading (connections still complete
    in the kernel's backlog, bytes pile up in a 4 KB receive buffer), ``resume()`` goes on.
    Each ``DLE EOT n`` it reads is answered from ``replies`` (a missing key: no answer) and kept
    out of ``received``, which holds every other byte in arrival order.
    """

    def __init__(self, sock: socket.socket | None = None) -> None:
        self.sock = sock or socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        if sock is None:
            self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.replies: dict[int, int] = dict(HEALTHY)
        self.received = bytearray()
        self.errors: list[str] = []
        self._reading = threading.Event()
        self._reading.set()
        self._cond = threading.Condition()
        self._busy = False
        self._closing = False
        self._thread: threading.Thread | None = None

    def listen(self) -> None:
        self.sock.listen(16)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def stall(self) -> None:
        self._reading.clear()

    def resume(self) -> None:
        self._reading.set()

    def data(self) -> bytes:
        with self._cond:
            return bytes(self.received)

    def wait_for(self, predicate: Callable[[FakePrinter], bool], timeout: float = PATIENCE) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)

    def settled(self) -> bool:
        """No connection being read and none waiting to be accepted."""
        with self._cond:
            if self._busy:
                return False
        return not select.select([self.sock], [], [], 0)[0]

    def close(self) -> None:
        self._closing = True
        self._reading.set()
        self.sock.close()

    def _serve(self) -> None:
        while not self._closing:
            self._reading.wait()
            try:
                ready = select.select([self.sock], [], [], 0.05)[0]
                if not ready:
                    continue
                with self._cond:
                    self._busy = True
                conn, _ = self.sock.accept()
            except (OSError, ValueError):
                # close() from the test's thread: the socket is gone (fd -1 is a ValueError
                # in select), which ends the fake printer, not the test.
                return
            try:
                self._read(conn)
            finally:
                conn.close()
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _read(self, conn: socket.socket) -> None:
        buffer = b""
        pos = 0
        while not self._closing:
            self._reading.wait()
            if not select.select([conn], [], [], 0.05)[0]:
                continue
            try:
                chunk = conn.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while True:
                try:
                    token = next_token(buffer, pos)
                except Exception as exc:
                    self.errors.append(str(exc))
                    return
                if token is None:
                    break
                if token.kind == "status":
                    answer = self.replies.get(token.args[0])
                    if answer is not None:
                        with contextlib.suppress(OSError):  # the spooler gave up on it
                            conn.sendall(bytes((answer,)))
                else:
                    with self._cond:
                        self.received += buffer[token.offset : token.end]
                        self._cond.notify_all()
                pos = token.end
            buffer, pos = buffer[pos:], 0


class PipeReader:
    """The reading end of a FIFO with a ``pipe_size`` buffer: opened (so a writer can open it),
    reading only once ``start()`` is called; ``data()`` is what it read."""

    def __init__(self, path: str, *, pipe_size: int = 4096) -> None:
        import fcntl

        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        fcntl.fcntl(self.fd, fcntl.F_SETPIPE_SZ, pipe_size)
        # A writer of our own keeps the pipe from reading as ended when the spooler closes it.
        self._keep = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        self._data = bytearray()
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def data(self) -> bytes:
        with self._cond:
            return bytes(self._data)

    def wait_for(self, predicate: Callable[[bytes], bool], timeout: float = PATIENCE) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(bytes(self._data)), timeout)

    def close(self) -> None:
        self._stop = True
        if self._thread is not None:
            self._thread.join(5)
        os.close(self._keep)
        os.close(self.fd)

    def _run(self) -> None:
        while not self._stop:
            if not select.select([self.fd], [], [], 0.05)[0]:
                continue
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                continue
            with self._cond:
                self._data += chunk
                self._cond.notify_all()
