"""The city subscriber of the sync benchmark (:mod:`bench.sync_link`), in a process of its own.

``python -m bench.sync_city HOST PORT TOPIC_PREFIX [--report] [--persistent]``

Subscribes (QoS 1) to ``<prefix>/+/ratings``, reads each record's ``id`` and acknowledges on
``<prefix>/<device>/acks`` as the contract says (``{"ids": [...]}``).  The same subscriber serves
the pad's worker and the raw paho reference, so both pay the same city.  It drives paho with its
own ``select`` and reads everything the socket holds before acking, so the ids that arrived
together go in one ack message (at most :data:`ACK_MAX`); a real receiver batches the same way,
one database transaction per batch.  Prints ``ready`` once subscribed; with ``--report`` also
``<id> <CLOCK_MONOTONIC seconds>`` for every message, as it arrives (the bench reads them to
time commit → at city; the clock is system-wide).
"""

from __future__ import annotations

import json
import select
import socket
import sys
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

#: Most ids in one ack message.
ACK_MAX = 100
#: Most packet reads before the ids read so far are acked.
READS = 256


def no_delay(client: mqtt.Client) -> None:
    """TCP_NODELAY on the client's socket, as the pad's worker sets it (and any receiver
    should: without it each small ack waits for the previous one's delayed TCP ACK, 40 ms)."""
    sock = client.socket()
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def main(argv: list[str]) -> int:
    host, port, prefix = argv[0], int(argv[1]), argv[2]
    report = "--report" in argv
    batches: dict[str, list[str]] = {}
    subscribed = False
    out = sys.stdout

    def on_subscribe(*args: object) -> None:
        nonlocal subscribed
        if not subscribed:
            out.write("ready\n")
            out.flush()
        subscribed = True

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        now = time.monotonic()
        rid = json.loads(msg.payload)["id"]
        batches.setdefault(msg.topic, []).append(rid)
        if report:
            out.write(f"{rid} {now:.6f}\n")

    def on_connect(client: mqtt.Client, *args: object) -> None:
        client.subscribe(f"{prefix}/+/ratings", qos=1)

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id="bench-city",
        clean_session="--persistent" not in argv,  # a persistent session outlives a restart
    )
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.max_inflight_messages_set(100)
    client.connect(host, port, keepalive=60)
    no_delay(client)
    while True:
        sock = client.socket()
        if sock is None:  # the broker went away (bench.sync_fleet restarts it): come back
            batches.clear()  # unacked: the pads send them again
            time.sleep(0.2)
            try:
                client.reconnect()
                no_delay(client)
            except OSError:
                pass
            continue
        wlist = [sock] if client.want_write() else []
        try:
            readable, writable, _ = select.select([sock], wlist, [], 1.0)
        except (OSError, ValueError):
            continue
        if readable:
            for _ in range(READS):
                if client.loop_read() != mqtt.MQTT_ERR_SUCCESS:
                    break
                if not select.select([sock], [], [], 0)[0]:
                    break
        for topic, ids in batches.items():
            acks = topic[: -len("ratings")] + "acks"
            for start in range(0, len(ids), ACK_MAX):
                client.publish(acks, json.dumps({"ids": ids[start : start + ACK_MAX]}), qos=1)
        batches.clear()
        if report:
            out.flush()
        if client.socket() is not None and (writable or client.want_write()):
            client.loop_write()
        if client.socket() is not None:
            client.loop_misc()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
