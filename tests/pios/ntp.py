"""The hall's time server for the guest: SNTP (RFC 4330) answers with the host's clock on the
host's 127.0.0.1:123, which the guest reaches as 10.0.2.2:123 (its systemd-timesyncd is set to
it by the image).  A Pi pad syncs its clock over the network at boot; `evaluator selftest`'s
clock part checks the kernel's synchronised flag, which only an NTP sync sets.
"""

from __future__ import annotations

import socket
import struct
import threading
import time

NTP_EPOCH = 2208988800  # 1900-01-01 to 1970-01-01 in seconds


def _stamp(t: float) -> bytes:
    seconds = int(t) + NTP_EPOCH
    fraction = int((t % 1) * 2**32)
    return struct.pack("!II", seconds, fraction)


class SntpServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 123) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.bind((host, port))
        except OSError as exc:
            self.sock.close()
            raise OSError(f"the SNTP server for the guest cannot listen on {host}:{port}: {exc} "
                          "(another time server on this host's loopback?)") from exc
        self.sock.settimeout(0.5)
        self.answered = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, name="sntp", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(512)
            except TimeoutError:
                continue
            except OSError:
                return
            received = time.time()
            if len(data) < 48 or data[0] & 0x07 != 3:  # mode 3: a client
                continue
            version = (data[0] >> 3) & 0x07
            reply = bytes([(0 << 6) | (version << 3) | 4, 1, data[2], 0xEC])  # leap 0, server
            reply += struct.pack("!II", 0, 0x10)  # root delay 0, root dispersion ~0.25 ms
            reply += b"LOCL" + _stamp(received) + data[40:48] + _stamp(received)
            reply += _stamp(time.time())
            self.sock.sendto(reply, peer)
            self.answered += 1

    def stop(self) -> None:
        self._stop.set()
        self.sock.close()
        self.thread.join(5)
