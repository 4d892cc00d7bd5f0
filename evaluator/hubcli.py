"""``evaluator hub …``: the reference city receiver and its reports (docs/hub.md).

``run`` (the service), ``register`` (a pad's public key), ``figures`` (art. 33), ``followups``
(unrated cases for the SMS of art. 25, and the 差评 needing a work order), ``export`` (CSV with
the national field names).  Kept apart from ``evaluator/cli.py``, which only adds the parser
and calls :func:`cmd_hub`: nothing here is imported by the pad.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
from pathlib import Path
from typing import Any, TextIO

from evaluator.sdnotify import sd_notify

#: The database when ``--db`` is not given: the service's StateDirectory.
DEFAULT_DB = "sqlite:////var/lib/evaluator-hub/hub.db"
DB_ENV = "EVALUATOR_HUB_DB"


def add_hub_parser(sub: Any) -> None:
    """Add ``hub`` and its actions to the ``evaluator`` subparsers ``sub``."""
    hub = sub.add_parser("hub", help="the reference city receiver: run, register, figures, export")
    actions = hub.add_subparsers(dest="hub_command", required=True, metavar="ACTION")

    def with_db(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--db",
            default=os.environ.get(DB_ENV, DEFAULT_DB),
            metavar="URL",
            help=f"sqlite:///path, a file path, or postgresql://… (default ${DB_ENV} or "
            f"{DEFAULT_DB})",
        )

    def with_period(p: argparse.ArgumentParser) -> None:
        p.add_argument("--since", metavar="DATE", type=_bound,
                       help="from this date/time (ISO), inclusive; without an offset the "
                            "hall's local time")  # fmt: skip
        p.add_argument("--until", metavar="DATE", type=_bound,
                       help="up to this date/time (ISO), exclusive")  # fmt: skip

    run = actions.add_parser("run", help="receive, verify, store and ack what the pads publish")
    with_db(run)
    run.add_argument(
        "--broker", action="append", default=[], metavar="URL",
        help="mqtt://host:port or mqtts://host:port; several are tried in turn",
    )  # fmt: skip
    run.add_argument("--group", default="hub", help="shared-subscription group (default hub)")
    run.add_argument("--prefix", default="hcp/v1", help="topic prefix (default hcp/v1)")
    run.add_argument("--client-id", default="", help="MQTT client id (default: the broker's)")
    run.add_argument(
        "--protocol", choices=("auto", "5", "3.1.1"), default="auto",
        help="MQTT version; auto (default): 3.1.1 with --part I/N, N > 1 (no shared subscription"
             " needed, and no MQTT 5 properties to parse per message), else 5",
    )  # fmt: skip
    run.add_argument("--tls-ca", default="", metavar="FILE")
    run.add_argument("--tls-cert", default="", metavar="FILE")
    run.add_argument("--tls-key", default="", metavar="FILE")
    run.add_argument("--username", default="")
    run.add_argument(
        "--password-file", type=Path, metavar="FILE", help="the MQTT password, read from a file"
    )
    run.add_argument(
        "--part", type=_part, default=(0, 1), metavar="I/N",
        help="receive only the devices of partition I of N (SHA-256 of the device id modulo N;"
             " one receiver per part, each device's chain on one receiver); default 0/1: all,"
             " through the shared subscription of --group",
    )  # fmt: skip
    run.add_argument(
        "--progress-every",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds between two progress lines in the log (default 60)",
    )
    run.add_argument("--registry-every", type=float, default=5.0, metavar="S",
                     help="with --part: seconds between two reads of the registry for newly"
                          " registered devices (default 5)")  # fmt: skip
    run.add_argument("--flood-burst", type=int, default=2000, metavar="N",
                     help="messages a pad may send at once before it is throttled (default "
                          "2000)")  # fmt: skip
    run.add_argument("--flood-rate", type=float, default=500.0, metavar="N",
                     help="messages a second a pad may send beyond that; more are "
                          "dropped unread, not acked, the pad flagged (default 500)")  # fmt: skip
    run.add_argument("--park-records", type=int, default=5000, metavar="N",
                     help="records a pad may have parked ahead of a missing one (default "
                          "5000); beyond it: dead letter 'parking full', flagged")  # fmt: skip
    run.add_argument("--park-bytes", type=int, default=16 * 1024 * 1024, metavar="N",
                     help="bytes of them (default 16 MiB)")

    register = actions.add_parser(
        "register",
        help="register a pad's public key, or every pad of a devices.csv (evaluator provision)",
    )
    with_db(register)
    register.add_argument("device", metavar="DEVICE", nargs="?")
    register.add_argument("pubkey", metavar="PUBKEY", nargs="?",
                          help="ed25519:… (evaluator keys show)")  # fmt: skip
    register.add_argument(
        "--csv", type=Path, metavar="devices.csv",
        help="every row's device_id and public_key (the file `evaluator provision` writes)",
    )  # fmt: skip
    register.add_argument(
        "--force", action="store_true",
        help="accept a new key for a pad registered with another one (its old key is kept)",
    )  # fmt: skip
    register.add_argument(
        "--unsigned-before", type=int, default=1, metavar="SEQ",
        help="accept unsigned records below this seq (a pad upgraded to keys); default 1",
    )  # fmt: skip

    figures = actions.add_parser("figures", help="art. 33 figures: item score, participation…")
    with_db(figures)
    with_period(figures)
    figures.add_argument("--json", action="store_true")

    followups = actions.add_parser(
        "followups", help="unrated cases for the 24-hour SMS (art. 25) and 差评 for work orders"
    )
    with_db(followups)
    with_period(followups)
    followups.add_argument("--json", action="store_true")

    flags = actions.add_parser(
        "flags", help="findings for audit: records lost on a pad, chains restarted or contradicted"
    )
    with_db(flags)
    flags.add_argument("--device", metavar="DEVICE", help="only this pad's findings")
    flags.add_argument("--json", action="store_true")

    conflicts = actions.add_parser(
        "conflicts",
        help="records held out of the figures (what a pad cannot truthfully say), both sides",
    )
    with_db(conflicts)
    conflicts.add_argument("--device", metavar="DEVICE", help="only this pad's held records")
    conflicts.add_argument("--json", action="store_true")

    roster = actions.add_parser(
        "roster", help="the city's roster: which clerks serve in which hall, at which pads"
    )
    with_db(roster)
    roster.add_argument(
        "--csv", type=Path, metavar="roster.csv",
        help="replace the roster with this file's rows (columns hall, device_id, clerk_id; "
             "device_id empty: every pad of the hall); without it, print the roster",
    )  # fmt: skip
    roster.add_argument("--json", action="store_true")
    dead = actions.add_parser(
        "dead", help="refused messages counted per pad and cause (dead letters, issue 16)"
    )
    with_db(dead)
    dead.add_argument("--device", metavar="DEVICE", help="only this pad's refusals")
    dead.add_argument("--json", action="store_true")

    witness = actions.add_parser(
        "witness",
        help="import the signed ratings heads the counters got with each rated (art. 40)",
    )
    with_db(witness)
    witness.add_argument(
        "file", metavar="FILE|-",
        help="JSON lines: a head each, or the evaluation.finished events as the counter read "
             "them ('-': standard input)",
    )  # fmt: skip

    export = actions.add_parser("export", help="the ratings as CSV with the national field names")
    with_db(export)
    with_period(export)
    export.add_argument("--out", type=Path, required=True, metavar="FILE.csv")


def _part(text: str) -> tuple[int, int]:
    """``--part I/N`` checked when parsed (a usage error, not a traceback)."""
    from sync.hub.receiver import ReceiverError, parse_part

    try:
        return parse_part(text)
    except ReceiverError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _watchdog_every() -> float | None:
    """Half of systemd's ``WatchdogSec=`` (``$WATCHDOG_USEC``, for this process only when
    ``$WATCHDOG_PID`` is unset or ours); ``None`` when systemd watches nothing."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6


def _bound(text: str) -> str:
    """A ``--since``/``--until`` checked when parsed (a usage error, not a traceback)."""
    from sync.hub.figures import parse_bound

    try:
        parse_bound(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def cmd_hub(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run ``evaluator hub <action>``, printing to ``out`` (``sys.stdout`` as it is at the
    call); the exit code."""
    from sync.hub.db import open_db

    out = out or sys.stdout
    if args.hub_command == "run":
        return _run(args)
    if args.hub_command == "register":
        rows = _register_rows(args)
    with open_db(args.db) as db:
        if args.hub_command == "register":
            return _register(db, rows, args, out)
        if args.hub_command == "export":
            from sync.hub.export import write_csv

            n = write_csv(db, args.out, since=args.since, until=args.until)
            print(f"{n} rows written to {args.out}", file=out)
            return 0
        if args.hub_command == "witness":
            return _witness(db, args.file, out)
        if args.hub_command == "conflicts":
            return _conflicts(db, args, out)
        if args.hub_command == "roster":
            return _roster(db, args, out)
        if args.hub_command == "dead":
            counted = db.dead_counts(args.device)
            if args.json:
                print(json.dumps(counted, ensure_ascii=False, indent=2), file=out)
            else:
                _print_dead(counted, out)
            return 1 if counted else 0
        if args.hub_command == "flags":
            found = db.flags(args.device)
            if args.json:
                print(json.dumps(found, ensure_ascii=False, indent=2), file=out)
            else:
                _print_flags(found, out)
            return 1 if found else 0
        from sync.hub import figures

        period = {"since": args.since, "until": args.until}
        if args.hub_command == "figures":
            data = figures.figures(db, **period)
            if args.json:
                print(json.dumps(data, ensure_ascii=False, indent=2), file=out)
            else:
                _print_figures(data, out)
            return 0
        lists = {
            "sms_follow_ups": figures.follow_ups(db, **period),
            "work_orders": figures.bad_ratings(db, **period),
        }
        if args.json:
            print(json.dumps(lists, ensure_ascii=False, indent=2), file=out)
        else:
            _print_lists(lists, out)
        return 0


def _witness(db: Any, name: str, out: TextIO) -> int:
    """Import the heads of ``name`` ('-': stdin); a line per refused head (stderr) and per flag
    raised, then the counts.  Exit 1 when a head was refused or a finding raised."""
    from sync.hub.db import HubError
    from sync.hub.witness import import_heads, read_lines

    try:  # read a line at a time, each bounded: a huge or endless file is not held in memory
        if name == "-":
            done = import_heads(db, read_lines(sys.stdin.buffer))
        else:
            with Path(name).open("rb") as stream:
                done = import_heads(db, read_lines(stream))
    except OSError as exc:
        raise HubError(f"{name}: cannot read: {exc}") from exc
    for number, why in done.refused:
        print(f"{name} line {number}: refused: {why}", file=sys.stderr)
    if done.refused_count > len(done.refused):
        print(f"{name}: {done.refused_count - len(done.refused)} more line(s) refused (only the "
              f"first {len(done.refused)} are shown)", file=sys.stderr)  # fmt: skip
    for device, kind, key in done.flagged:
        print(f"FINDING: {device} {kind} [{key}] (evaluator hub flags --device {device})",
              file=out)  # fmt: skip
    for device, epoch, seq, tip in done.ahead:
        print(f"{device}: witnessed up to seq {seq} (epoch {epoch!r}), the city holds up to "
              f"{tip}: judged as its records arrive and at its next status", file=out)  # fmt: skip
    print(f"{done.kept} head(s) kept, {done.known} already kept, {done.refused_count} refused, "
          f"{len(done.flagged)} finding(s) for audit, in {db.where}", file=out)  # fmt: skip
    return 1 if done.refused_count or done.flagged else 0


def _conflicts(db: Any, args: argparse.Namespace, out: TextIO) -> int:
    """Every held record with both sides; exit 1 when there is any (a person must decide)."""
    from sync.hub.truth import listed

    found = listed(db, args.device)
    if args.json:
        print(json.dumps(found, ensure_ascii=False, indent=2), file=out)
        return 1 if found else 0
    if not found:
        print("no conflicts: every stored record is counted", file=out)
        return 0
    held = len({c["record_id"] for c in found})
    print(f"{held} record(s) held out of the figures ({len(found)} conflict(s)):", file=out)
    for c in found:
        print(_printable(f"  {c['flagged_at']}  {c['device_id']}  {c['kind']}  "
                         f"this: {_side(c['record'])}"), file=out)  # fmt: skip
        detail = {k: v for k, v in c["detail"].items() if k != "record"}
        other = _side(c["other"]) if c["other"] else json.dumps(detail, ensure_ascii=False)
        print(_printable(f"      other: {other}"), file=out)
    return 1


def _side(s: dict[str, Any] | None) -> str:
    """One side of a conflict in one line."""
    if not s:
        return "(not stored)"
    clerk = (s.get("clerk") or {}).get("id")
    return (f"{s['device_id']} seq {s['seq']} {s['kind']} {s.get('level') or ''} at "
            f"{s['rated_at']} clerk {clerk} cases {','.join(map(str, s['serials']))}")  # fmt: skip


def _roster(db: Any, args: argparse.Namespace, out: TextIO) -> int:
    """Replace the roster from ``--csv`` (all rows or none), or print it."""
    from sync.hub.roster import read_csv

    if args.csv is not None:
        rows = read_csv(args.csv)
        db.set_roster(rows)
        devices = len({d for _h, d, _c in rows if d})
        print(f"roster: {len(rows)} row(s), {len({c for _h, _d, c in rows})} clerk(s), "
              f"{devices} pad(s) named, in {db.where}", file=out)  # fmt: skip
        return 0
    rows = db.roster()
    if args.json:
        print(json.dumps([{"hall": h, "device_id": d, "clerk_id": c} for h, d, c in rows],
                         ensure_ascii=False, indent=2), file=out)  # fmt: skip
        return 0
    if not rows:
        print("no roster: clerks are checked against the pads' sign-ins only", file=out)
    for h, d, c in rows:
        print(_printable(f"  {h}  {d or '(every pad of the hall)'}  {c}"), file=out)
    return 0


def _print_flags(found: list[dict[str, Any]], out: TextIO) -> None:
    """One line per finding; nothing found is said too (an empty answer is not silence)."""
    if not found:
        print("no findings: every stored chain is whole and agrees with its witnesses", file=out)
        return
    print(f"{len(found)} finding(s) for audit:", file=out)
    for f in found:
        detail = "; ".join(f"{k}={v}" for k, v in sorted(f["detail"].items()))
        line = f"  {f['flagged_at']}  {f['device_id']}  {f['kind']} [{f['key']}]  {detail}"
        print(_printable(line), file=out)


def _print_dead(counted: list[dict[str, Any]], out: TextIO) -> None:
    """One line per (pad, cause), the most refused first; none is said too."""
    if not counted:
        print("no dead letters: nothing was refused", file=out)
        return
    total = sum(c["count"] for c in counted)
    print(f"{total} message(s) refused, by pad and cause (rows kept in hub_dead in brackets):",
          file=out)  # fmt: skip
    for c in counted:
        line = (f"  {c['count']:>9}  [{c['stored']:>3}]  {c['device_id'] or '?'}  {c['cause']}"
                f"  first {c['first_at']}  last {c['last_at']}  sha256 {c['last_sha256'][:16]}…")
        print(_printable(line), file=out)


#: Characters a pad's words (a loss statement's problem, its epoch) must not bring raw to the
#: auditor's terminal: C0 and C1 controls (ANSI escapes, carriage return, backspace), line and
#: paragraph separators, and the bidi embeddings, overrides and isolates.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _printable(text: str) -> str:
    """``text`` with every :data:`_UNPRINTABLE` character escaped (``\\x1b``, ``\\u202e``): a
    finding's words cannot erase, hide or reorder what the auditor reads."""
    return _UNPRINTABLE.sub(
        lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}", text
    )


#: The columns of ``devices.csv`` (``evaluator provision`` writes it).
CSV_COLUMNS = ("device_id", "public_key")


def _register_rows(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """``(where, device id, key text)`` from ``--csv`` or from ``DEVICE PUBKEY``."""
    import csv
    import io

    from sync.hub.db import HubError

    if args.csv is None:
        if not args.device or not args.pubkey:
            raise HubError("give DEVICE PUBKEY, or --csv devices.csv (from evaluator provision)")
        if not args.pubkey.startswith(("ed25519:", "-----BEGIN")):  # a file holding the key
            from sync.keys import DeviceKeyError, PublicKey

            try:
                return [("the command line", args.device, PublicKey.parse(args.pubkey).text)]
            except DeviceKeyError as exc:
                raise HubError(str(exc)) from exc
        return [("the command line", args.device, args.pubkey)]
    if args.device or args.pubkey:
        raise HubError("--csv takes the pads from the file: no DEVICE PUBKEY with it")
    try:
        text = args.csv.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise HubError(f"{args.csv}: cannot read: {exc}") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise HubError(
                f"{args.csv}: row 1 must name the columns {', '.join(CSV_COLUMNS)} "
                f"(missing {', '.join(missing)}; `evaluator provision` writes them)"
            )
        return [(f"{args.csv.name} row {n}", (r["device_id"] or "").strip(),
                 (r["public_key"] or "").strip())
                for n, r in enumerate(reader, start=2)
                if any((v or "").strip() for v in r.values() if isinstance(v, str))]  # fmt: skip
    except csv.Error as exc:  # a cell over the csv module's limit (128 KiB): no devices.csv
        raise HubError(
            f"{args.csv}: after line {reader.line_num}: not a devices.csv ({exc}); "
            "nothing registered"
        ) from exc


def _register(db: Any, rows: list[tuple[str, str, str]], args: argparse.Namespace,
              out: TextIO) -> int:  # fmt: skip
    """Register ``rows``; a line per new, changed or refused pad, the counts; exit 1 when a
    row was refused (the others are registered)."""
    done = db.register_many(rows, unsigned_before=args.unsigned_before, force=args.force)
    keys = {device: text for _where, device, text in rows}
    from sync.keys import PublicKey

    for device in done.new:
        print(f"registered {device} key {PublicKey.parse(keys[device]).key_id}", file=out)
    for device in done.changed:
        print(f"registered {device} key {PublicKey.parse(keys[device]).key_id} (a changed "
              "key, --force; the old one is kept)", file=out)  # fmt: skip
    for where, _device, why in done.refused:
        print(f"{where}: refused: {why}", file=sys.stderr)
    print(f"{len(done.new)} new, {len(done.changed)} changed, {len(done.unchanged)} unchanged, "
          f"{len(done.refused)} refused in {db.where}", file=out)  # fmt: skip
    if done.refused:
        return 1 if args.csv is not None else 2  # one pad on the command line: bad input
    return 0


def run_protocol(chosen: str, part: tuple[int, int]) -> str:
    """The MQTT version of ``hub run --protocol chosen``: ``auto`` is 3.1.1 under ``--part I/N``
    with N > 1 (the receiver subscribes to its devices' own topics; paho parses no MQTT 5
    properties, ~20 µs of CPU a message, issue 16) and 5 otherwise (the shared subscription
    of ``--group`` is MQTT 5's)."""
    if chosen != "auto":
        return chosen
    return "3.1.1" if part[1] > 1 else "5"


def _run(args: argparse.Namespace) -> int:
    from sync.hub.receiver import Receiver

    password = _password(args.password_file) if args.password_file else ""
    receiver = Receiver(
        args.db,
        args.broker or ["mqtt://127.0.0.1:1883"],
        topic_prefix=args.prefix,
        group=args.group,
        client_id=args.client_id,
        protocol=run_protocol(args.protocol, args.part),
        tls_ca=args.tls_ca,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        username=args.username,
        password=password,
        part=args.part,
        progress_every=args.progress_every,
        registry_every=args.registry_every,
        alive=lambda: sd_notify("WATCHDOG=1"),
        alive_every=_watchdog_every() or 10.0,
        flood_burst=args.flood_burst,
        flood_rate=args.flood_rate,
        park_records=args.park_records,
        park_bytes=args.park_bytes,
    )
    done = threading.Event()

    def stop(signum: int, frame: Any) -> None:
        done.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    receiver.start()
    ready_told = False
    while not done.wait(1.0):
        if not receiver.is_alive():
            print(f"evaluator hub: the receiver stopped: {receiver.last_error}", file=sys.stderr)
            return 1
        if receiver.connected and not ready_told:
            ready_told = True
            sd_notify("READY=1")
            index, total = args.part
            part = f" and the devices of part {index}/{total}" if total > 1 else ""
            print(f"evaluator hub: receiving on {receiver.subscriptions}{part}", flush=True)
    sd_notify("STOPPING=1")
    receiver.stop()
    receiver.join(10)
    print(f"evaluator hub: stopped; {receiver.stats}", flush=True)
    return 0


def _password(path: Path) -> str:
    """The MQTT password in ``path``, read under the rules of the pad's key files (owner-only,
    a regular file, small: a FIFO must not hang the service at start); a
    :class:`~sync.hub.db.HubError` (one line, exit 2) says what is wrong."""
    from sync.hub.db import HubError
    from sync.secretfile import read_secret

    data = read_secret(
        path,
        what="MQTT password file",
        missing="write the broker password there (chmod 600) or use systemd LoadCredential=",
        max_size=4096,
        error=HubError,
    )
    return data.decode("utf-8", "replace").strip()


def _print_figures(data: dict[str, Any], out: TextIO) -> None:
    hall, cov = data["hall"], data["coverage"]

    from evaluator.rules.figures import percent_text as pct
    from evaluator.rules.figures import score_text

    def num(v: Any) -> str:  # a score: the pad's ``evaluator stats`` text (one rule)
        return score_text(v)

    flagged = data.get("audit", {}).get("devices_with_findings") or {}
    if flagged:
        print(f"WARNING: {len(flagged)} device(s) in these figures have findings for audit; "
              "their ratings may be incomplete (evaluator hub flags):", file=out)  # fmt: skip
        for device, kinds in flagged.items():
            print(f"  {device}: {', '.join(kinds)}", file=out)
        print(f"WARNING: figures of {', '.join(flagged)} need audit", file=sys.stderr)

    print(
        f"hall: {hall['ratings']} ratings ({hall['good']} 好评, {hall['bad']} 差评), mean score "
        f"{num(hall['mean_score'])}, item score {num(hall['item_score'])}, participation "
        f"{pct(hall['participation'])} ({hall['rated_cases']}/{hall['presented_cases']} cases), "
        f"{hall['cancelled']} cancelled",
        file=out,
    )
    print(
        f"coverage: {cov['online']}/{cov['registered']} devices online ({pct(cov['coverage'])})",
        file=out,
    )
    held = {d: n for d, n in (data.get("held") or {}).items() if n}
    if held:
        print(f"held out of these figures: {sum(held.values())} record(s) of "
              + ", ".join(f"{d} ({n})" for d, n in held.items())
              + " (evaluator hub conflicts)", file=out)  # fmt: skip
    print("matters:", file=out)
    for m in data["matters"]:
        print(f"  {m['matter_code']} {m['matter_name']}: {m['ratings']} ratings, mean "
              f"{num(m['mean_score'])}, {m['bad']} 差评", file=out)  # fmt: skip
    print("clerks:", file=out)
    for c in data["clerks"]:
        print(f"  {c['clerk_id']} {c['clerk_name']}: {c['ratings']} ratings, mean "
              f"{num(c['mean_score'])}, {c['bad']} 差评, participation "
              f"{pct(c['participation'])}, {c['cancelled']} cancelled", file=out)  # fmt: skip


def _print_lists(lists: dict[str, list[dict[str, Any]]], out: TextIO) -> None:
    print(f"SMS follow-ups (art. 25): {len(lists['sms_follow_ups'])}", file=out)
    for f in lists["sms_follow_ups"]:
        print(f"  {f['serial']} {f['matter_name']} device {f['device_id']} ended "
              f"{f['ended_at']} ({f['by']}), SMS due {f['sms_due']}", file=out)  # fmt: skip
    print(f"差评 needing a work order (art. 35): {len(lists['work_orders'])}", file=out)
    for w in lists["work_orders"]:
        seq = f"{w['seq']}@{w['epoch'][-12:]}" if w.get("epoch") else w["seq"]
        print(f"  {w['rated_at']} {w['device_id']} seq {seq} {w['level']} clerk "
              f"{w['clerk_id']} cases {','.join(w['serials'])} reasons "
              f"{'; '.join(w['reasons'])}", file=out)  # fmt: skip
