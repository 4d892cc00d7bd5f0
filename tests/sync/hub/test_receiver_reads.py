"""The receiver's reads (issue 16 "Speed"): paho's packets cut from one ``recv`` of the socket
(:class:`sync.hub.receiver.ReadBuffer`) and its PUBACKs corked during a burst.  Over a real
socket pair: the same bytes in the same order whatever sizes paho asks, the end of the stream
and an empty socket told as paho expects; the whole receiver path is exercised by the other
``test_receiver*`` files on a real broker."""

from __future__ import annotations

import socket

import pytest

from sync.hub.receiver import READ_BYTES, ReadBuffer, cork


def _pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    a.setblocking(False)
    return a, b


def test_the_buffer_hands_out_the_socket_bytes_in_order_whatever_the_sizes() -> None:
    ours, peer = _pair()
    with ours, peer:
        data = bytes(range(256)) * 40  # 10,240 bytes, several packets' worth
        peer.sendall(data)
        buffer = ReadBuffer(ours.recv)
        got = b""
        for size in [1, 1, 3, 500, 1, 2, 7000, 9999]:
            got += buffer.recv(size)
        assert got == data
        assert not buffer.pending
        with pytest.raises(BlockingIOError):  # empty: paho takes it for "try again later"
            buffer.recv(1)


def test_the_buffer_reads_the_socket_once_for_many_small_reads() -> None:
    ours, peer = _pair()
    calls: list[int] = []

    def recv(size: int) -> bytes:
        calls.append(size)
        return ours.recv(size)

    with ours, peer:
        peer.sendall(b"\x30\x05abcde" * 100)  # 100 tiny PUBLISH-like packets
        buffer = ReadBuffer(recv)
        for _ in range(100):
            assert buffer.recv(1) == b"\x30" and buffer.recv(1) == b"\x05"
            assert buffer.recv(5) == b"abcde"
        assert calls == [READ_BYTES]
        assert buffer.pending is False


def test_pending_bytes_are_told_and_the_end_of_the_stream_is_empty() -> None:
    ours, peer = _pair()
    with ours:
        peer.sendall(b"xyz")
        peer.close()
        buffer = ReadBuffer(ours.recv)
        assert buffer.recv(1) == b"x"
        assert buffer.pending  # select on the socket would not see these two bytes
        assert buffer.recv(10) == b"yz"
        assert buffer.recv(1) == b""  # the peer closed: paho takes it for a lost connection


def test_install_replaces_the_clients_socket_reads() -> None:
    class Client:
        def _sock_recv(self, size: int) -> bytes:
            return b"ab"

    client = Client()
    buffer = ReadBuffer.install(client)
    assert buffer is not None and client._sock_recv == buffer.recv
    assert client._sock_recv(1) == b"a" and buffer.pending
    assert ReadBuffer.install(object()) is None  # a paho without it reads as it did


def test_corked_writes_leave_together_when_released() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        out = socket.create_connection(server.getsockname())
        conn, _ = server.accept()
        with out, conn:
            out.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            cork(out, True)
            for _ in range(50):
                out.send(b"\x40\x02\x00\x01")  # PUBACKs, one send each, as paho writes them
            assert out.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK) == 1
            cork(out, False)
            assert out.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK) == 0
            got = b""
            conn.settimeout(5)
            while len(got) < 200:
                got += conn.recv(4096)
            assert got == b"\x40\x02\x00\x01" * 50
