"""Connections to a receipt printer, chosen by config, each with a timeout that ends.

The wiring fills a :class:`ConnectionSpec` from the config and calls :func:`open_printer`, which
makes the connection object without touching the device (opening happens on the spooler's
thread).  Kinds:

``dummy``
    python-escpos's :class:`~escpos.printer.Dummy`, the shipped stand-in: keeps every byte
    (``output``) and answers the status requests as a healthy printer.
``usb``
    python-escpos's :class:`~escpos.printer.Usb` (needs ``pyusb``): ``vendor_id``,
    ``product_id``, ``in_ep``/``out_ep`` (0x82/0x01; cheap printers use 0x81/0x03).  Its
    ``timeout`` defaults to 0, which pyusb reads as "wait forever": here it is always the
    spec's ``timeout`` (seconds, more than 0), passed to every transfer.
``serial``
    pyserial (``path``, ``baudrate``, ``rtscts``), with a write timeout: without one a printer
    holding CTS low blocks the writer forever.
``network``
    a TCP socket to ``host``:``port`` (9100).  The send buffer is kept small
    (:data:`SEND_BUFFER`): Linux would otherwise take up to 4 MB from us for a printer that
    reads nothing, and a receipt would count as sent that never printed.  One connection a
    receipt: printers on 9100 end a job when the connection closes, and many take one client
    at a time.
``file``
    a device file (``/dev/usb/lp0``, the kernel's usblp), opened non-blocking and written with
    ``poll()``: python-escpos's ``File`` uses a blocking ``open()``, which never returns for a
    FIFO nobody reads, and blocking writes, which never return for a printer that stopped
    taking data.  No back channel: the state after a print is ``unknown``.

Every write is cut in chunks and fails with :class:`PrinterOffline` when the printer takes no
byte for ``timeout`` seconds (a slow printer that keeps taking data is not cut off).  A status
query waits at most ``status_timeout`` seconds for an answer.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from printer.errors import PrinterConfigError, PrinterOffline
from printer.status import HEALTHY

KINDS: tuple[str, ...] = ("dummy", "usb", "serial", "network", "file")
#: Bytes handed to the device per write call.
CHUNK = 4096
#: Per write call on a serial line: 0.3 s at 9600 bit/s, so a slow line that keeps taking data
#: is never mistaken for a stalled one.
SERIAL_CHUNK = 256
#: The socket send buffer for a network printer (the kernel doubles it).
SEND_BUFFER = 16384
#: Bytes the stand-in keeps before it forgets the older receipts.
DUMMY_KEEP = 1 << 20


@dataclass(frozen=True)
class ConnectionSpec:
    """Where the printer is; only the fields of ``kind`` are read.  Checked when made
    (:class:`PrinterConfigError` lists every problem)."""

    kind: str = "dummy"
    #: ``usb``: ids and endpoints.
    vendor_id: int = 0
    product_id: int = 0
    in_ep: int = 0x82
    out_ep: int = 0x01
    #: ``serial``: the port (a path or a pyserial URL); ``file``: the device file.
    path: str = ""
    baudrate: int = 9600
    rtscts: bool = False
    #: ``network``: host name or address, TCP port.
    host: str = ""
    port: int = 9100
    #: Seconds without progress before a connect or write fails (never 0: that is "forever").
    timeout: float = 10.0
    #: Seconds to wait for the answer to one status request.
    status_timeout: float = 0.5

    def __post_init__(self) -> None:
        problems = []
        if self.kind not in KINDS:
            problems.append(f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        for name in ("timeout", "status_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                problems.append(f"{name} must be a number of seconds above 0 (0 would be forever)")
        if self.kind == "usb":
            for name in ("vendor_id", "product_id"):
                if not _int_in(getattr(self, name), 1, 0xFFFF):
                    problems.append(f"{name} must be 0x0001–0xFFFF (see lsusb)")
            for name in ("in_ep", "out_ep"):
                if not _int_in(getattr(self, name), 1, 0xFF):
                    problems.append(f"{name} must be an endpoint address 0x01–0xFF")
        if self.kind in ("serial", "file") and not (isinstance(self.path, str) and self.path):
            problems.append(f"path must name the {self.kind} device, e.g. /dev/usb/lp0")
        if self.kind == "serial" and not _int_in(self.baudrate, 50, 4_000_000):
            problems.append("baudrate must be a whole number of bits per second")
        if self.kind == "network":
            if not (isinstance(self.host, str) and self.host):
                problems.append("host must name the printer (host name or IP address)")
            if not _int_in(self.port, 1, 65535):
                problems.append("port must be 1–65535 (printers listen on 9100)")
        if problems:
            raise PrinterConfigError(problems)

    @classmethod
    def from_config(cls, table: Mapping[str, Any]) -> ConnectionSpec:
        """A spec from a config table (the field names above); unknown keys are problems too."""
        known = {f.name for f in fields(cls)}
        problems = [f"unknown printer connection key {k!r}" for k in sorted(set(table) - known)]
        try:
            spec = cls(**{k: v for k, v in table.items() if k in known})
        except PrinterConfigError as exc:
            problems += exc.problems
        if problems:
            raise PrinterConfigError(problems)
        return spec

    def describe(self) -> str:
        """Where the printer is, for logs and ``status`` (no secrets: there are none)."""
        if self.kind == "usb":
            return f"usb {self.vendor_id:04x}:{self.product_id:04x}"
        if self.kind == "network":
            return f"network {self.host}:{self.port}"
        if self.kind in ("serial", "file"):
            return f"{self.kind} {self.path}"
        return "dummy"


def _int_in(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


class Connection:
    """One printer link.  Used by one thread (the spooler's), except :meth:`abort`, which is
    final: the spooler calls it when it stops.

    ``answers`` says whether it has a back channel for status requests.  ``per_job``: closed
    after every receipt.
    """

    answers = True
    per_job = False

    def __init__(self, spec: ConnectionSpec) -> None:
        self.spec = spec

    def open(self) -> None:
        """Open the link if it is not open; :class:`PrinterOffline` when it cannot be."""

    def write(self, data: bytes) -> None:
        """Send all of ``data``; :class:`PrinterOffline` when the printer takes no byte for
        ``timeout`` seconds or the link fails."""
        raise NotImplementedError

    def query(self, request: bytes) -> int | None:
        """Send a status request and return the answer byte, or ``None`` without one."""
        return None

    def close(self) -> None:
        """Close the link (it is opened again on the next use)."""

    def abort(self) -> None:
        """From another thread: make a blocked write fail soon, and every later one."""


class DummyConnection(Connection):
    """python-escpos's ``Dummy``: ``output`` is the bytes written; ``replies`` maps a
    ``DLE EOT n`` to its answer (a healthy printer unless changed; remove one for no answer).

    A pad on the stand-in runs for months: once ``output`` passes :data:`DUMMY_KEEP` bytes it
    is cleared before the next write, so it always holds at least the last receipt.  The
    ``escpos`` package takes about 0.2 s to import, so it is imported on first use (on the
    spooler's thread, not at the pad's start).
    """

    def __init__(self, spec: ConnectionSpec | None = None) -> None:
        super().__init__(spec or ConnectionSpec())
        self.replies: dict[int, int] = dict(HEALTHY)
        self._printer: Any = None
        self._size = 0

    def open(self) -> None:
        if self._printer is None:
            from escpos.printer import Dummy

            self._printer = Dummy()

    @property
    def output(self) -> bytes:
        """Every byte written so far."""
        return b"" if self._printer is None else bytes(self._printer.output)

    def write(self, data: bytes) -> None:
        self.open()
        if self._size > DUMMY_KEEP:
            self._printer.clear()
            self._size = 0
        self._printer._raw(data)
        self._size += len(data)

    def query(self, request: bytes) -> int | None:
        return self.replies.get(request[-1])


class NetworkConnection(Connection):
    """A raw TCP printer (port 9100)."""

    per_job = True

    def __init__(self, spec: ConnectionSpec) -> None:
        super().__init__(spec)
        self._sock: socket.socket | None = None
        self._aborted = False

    def open(self) -> None:
        if self._aborted:
            raise PrinterOffline(f"{self.spec.describe()}: aborted (stopping)")
        if self._sock is not None:
            return
        try:
            sock = socket.create_connection((self.spec.host, self.spec.port), self.spec.timeout)
        except OSError as exc:
            raise PrinterOffline(f"cannot connect to {self.spec.describe()}: {_why(exc)}") from exc
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        self._sock = sock

    def write(self, data: bytes) -> None:
        self.open()
        sock = self._sock
        assert sock is not None
        sock.settimeout(self.spec.timeout)
        view = memoryview(data)
        try:
            while view:
                view = view[sock.send(view[:CHUNK]) :]
        except TimeoutError as exc:
            raise PrinterOffline(
                f"{self.spec.describe()} took no data for {self.spec.timeout:g} s"
            ) from exc
        except OSError as exc:
            raise PrinterOffline(f"{self.spec.describe()}: {_why(exc)}") from exc

    def query(self, request: bytes) -> int | None:
        self.open()
        sock = self._sock
        assert sock is not None
        try:
            sock.setblocking(False)
            try:
                while sock.recv(256):  # drop stale bytes
                    pass
            except BlockingIOError:
                pass
            sock.settimeout(self.spec.status_timeout)
            sock.sendall(request)
            answer = sock.recv(16)
        except TimeoutError:
            return None
        except OSError as exc:
            raise PrinterOffline(f"{self.spec.describe()}: {_why(exc)}") from exc
        return answer[-1] if answer else None

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def abort(self) -> None:
        self._aborted = True  # final: a connection made after this one is refused too
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class FileConnection(Connection):
    """A device file (``/dev/usb/lp0``), non-blocking, written with ``poll()``; :meth:`abort`
    wakes a blocked write through a pipe of its own."""

    answers = False

    def __init__(self, spec: ConnectionSpec) -> None:
        super().__init__(spec)
        self._fd: int | None = None
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def open(self) -> None:
        if self._fd is not None:
            return
        flags = os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_APPEND
        try:
            self._fd = os.open(self.spec.path, flags)
        except OSError as exc:
            raise PrinterOffline(f"cannot open {self.spec.path}: {_why(exc)}") from exc

    def write(self, data: bytes) -> None:
        self.open()
        fd = self._fd
        assert fd is not None
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        poller.register(self._wake_r, select.POLLIN)
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(fd, view[:CHUNK]) :]
                continue
            except BlockingIOError:
                pass
            except OSError as exc:
                raise PrinterOffline(f"{self.spec.path}: {_why(exc)}") from exc
            ready = poller.poll(self.spec.timeout * 1000)
            if not ready:
                raise PrinterOffline(f"{self.spec.path} took no data for {self.spec.timeout:g} s")
            if any(f == self._wake_r for f, _ in ready):  # the byte stays: abort is final
                raise PrinterOffline(f"{self.spec.path}: the write was aborted (stopping)")

    def abort(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"x")

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


class SerialConnection(Connection):
    """A serial printer through pyserial, with read and write timeouts."""

    def __init__(self, spec: ConnectionSpec) -> None:
        super().__init__(spec)
        self._port: Any = None

    def open(self) -> None:
        if self._port is not None:
            return
        import serial

        try:
            self._port = serial.serial_for_url(
                self.spec.path,
                baudrate=self.spec.baudrate,
                rtscts=self.spec.rtscts,
                timeout=self.spec.status_timeout,
                write_timeout=self.spec.timeout,
            )
        except (OSError, ValueError, serial.SerialException) as exc:
            raise PrinterOffline(f"cannot open {self.spec.path}: {exc}") from exc

    def write(self, data: bytes) -> None:
        import serial

        self.open()
        try:
            for start in range(0, len(data), SERIAL_CHUNK):
                self._port.write(data[start : start + SERIAL_CHUNK])
            self._port.flush()
        except serial.SerialTimeoutException as exc:
            raise PrinterOffline(
                f"{self.spec.path} took no data for {self.spec.timeout:g} s"
            ) from exc
        except (OSError, serial.SerialException) as exc:
            raise PrinterOffline(f"{self.spec.path}: {exc}") from exc

    def query(self, request: bytes) -> int | None:
        import serial

        self.open()
        try:
            self._port.reset_input_buffer()
            self._port.write(request)
            answer = self._port.read(1)
        except (OSError, serial.SerialException) as exc:
            raise PrinterOffline(f"{self.spec.path}: {exc}") from exc
        return answer[-1] if answer else None

    def close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            # A vanished adapter fails to close: it is gone anyway.
            with contextlib.suppress(Exception):
                port.close()


class UsbConnection(Connection):
    """A USB printer through python-escpos's ``Usb`` (pyusb), every transfer with a timeout."""

    def __init__(self, spec: ConnectionSpec) -> None:
        super().__init__(spec)
        self._printer: Any = None

    @property
    def _ms(self) -> int:
        return max(1, round(self.spec.timeout * 1000))

    def open(self) -> None:
        if self._printer is not None:
            return
        try:
            import usb.core  # noqa: F401 - without pyusb, escpos's Usb fails again in __del__
        except ImportError as exc:
            raise PrinterOffline(
                f"cannot open {self.spec.describe()}: USB printing needs the pyusb package"
            ) from exc
        try:
            from escpos.printer import Usb

            printer = Usb(
                self.spec.vendor_id,
                self.spec.product_id,
                timeout=self._ms,
                in_ep=self.spec.in_ep,
                out_ep=self.spec.out_ep,
            )
            printer.open()
        except Exception as exc:  # pyusb missing, not found, busy, no permission
            raise PrinterOffline(
                f"cannot open {self.spec.describe()}: {exc} (pyusb installed? plugged in? "
                "a udev rule for the device? usblp holding it?)"
            ) from exc
        self._printer = printer

    def write(self, data: bytes) -> None:
        self.open()
        try:
            for start in range(0, len(data), CHUNK):
                self._printer.device.write(self.spec.out_ep, data[start : start + CHUNK], self._ms)
        except Exception as exc:  # usb.core.USBError (timeout, unplugged)
            raise PrinterOffline(f"{self.spec.describe()}: {exc}") from exc

    def query(self, request: bytes) -> int | None:
        self.open()
        try:
            self._printer.device.write(self.spec.out_ep, request, self._ms)
            answer = self._printer.device.read(
                self.spec.in_ep, 16, max(1, round(self.spec.status_timeout * 1000))
            )
        except Exception as exc:  # usb.core.USBTimeoutError: no answer
            if "timed out" in str(exc).lower() or getattr(exc, "errno", None) == errno.ETIMEDOUT:
                return None
            raise PrinterOffline(f"{self.spec.describe()}: {exc}") from exc
        return answer[-1] if len(answer) else None

    def close(self) -> None:
        printer, self._printer = self._printer, None
        if printer is not None:
            with contextlib.suppress(Exception):  # unplugged: nothing left to release
                printer.close()


def _why(exc: OSError) -> str:
    hints = {
        errno.ENXIO: "nobody reads it (no printer behind the device file)",
        errno.ENOENT: "no such device (plugged in? the right path?)",
        errno.EACCES: "permission denied (add the user to the lp group, or a udev rule)",
        errno.EBUSY: "busy (another program holds the printer)",
        errno.ENOSPC: "no space left on the device",
        errno.ECONNREFUSED: "connection refused (printer off, or another port?)",
        errno.EHOSTUNREACH: "host unreachable",
        errno.EPIPE: "the reader went away",
        errno.ECONNRESET: "the printer reset the connection",
    }
    return hints.get(exc.errno or 0, exc.strerror or str(exc))


def open_printer(spec: ConnectionSpec) -> Connection:
    """The connection for ``spec`` (no I/O yet: the spooler opens it on its own thread)."""
    kinds: dict[str, type[Connection]] = {
        "dummy": DummyConnection,
        "usb": UsbConnection,
        "serial": SerialConnection,
        "network": NetworkConnection,
        "file": FileConnection,
    }
    return kinds[spec.kind](spec)
