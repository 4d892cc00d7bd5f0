"""A pad's city link in a process of its own, so a test can SIGKILL it mid-drain and start it
again: ``python -m tests.sync.devicechild --store PATH --device ID --port N [...]``.

It runs the real :class:`sync.mqtt.SyncWorker` over the store at ``--store`` (as the pad's sync
thread does) and, with ``--live N``, appends N more ratings through the real
``Store.append_rating`` (signed with the device key at ``--key``), each followed by an event
(``Store.append_event``: a printer fault starting or ending), one pair every ``--every``
seconds, calling ``notify()`` after each as the app does.  The backlog goes slowly by default
(``--burst`` 20, then ``--max-rate`` 40/s) so that a kill lands mid-drain.  It prints
``started`` once the worker runs, ``live <rating id> <event id>`` after each committed pair and
``done`` when they are all committed; then it keeps uploading until it is killed or its
standard input closes.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from bench.sync_link import content
from sync.keys import DeviceKey
from sync.mqtt import SyncWorker
from sync.store import Store


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--device", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--prefix", default="hcp/v1")
    parser.add_argument("--key", default="")
    parser.add_argument("--live", type=int, default=0)
    parser.add_argument("--every", type=float, default=0.02)
    parser.add_argument("--first", type=int, default=0, help="first case number of the live ones")
    parser.add_argument("--resend-after", type=float, default=1.5)
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--max-rate", type=float, default=40.0)
    args = parser.parse_args(argv)

    signer = DeviceKey.load(args.key) if args.key else None
    worker = SyncWorker(
        store_path=Path(args.store),
        device_id=args.device,
        host=args.host,
        port=args.port,
        topic_prefix=args.prefix,
        resend_after=args.resend_after,
        burst=args.burst,
        max_rate=args.max_rate,
        reconnect_min=0.1,
        reconnect_max=1.0,
        reconnect_spread=0.2,
        connect_timeout=1.0,
        poll_interval=0.5,
    )
    worker.start()
    print("started", flush=True)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    if args.live:
        with Store(Path(args.store), device_id=args.device, signer=signer) as store:
            for n in range(args.live):
                record = store.append_rating(content(args.first + n))
                fault = {"fault": "offline", "active": n % 2 == 0, "message": ""}
                event = store.append_event("printer_fault", fault)
                worker.notify()
                print(f"live {record['id']} {event['id']}", flush=True)
                if stop.wait(args.every):
                    break
    print("done", flush=True)
    stop.wait()
    worker.stop()
    worker.join(5)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
