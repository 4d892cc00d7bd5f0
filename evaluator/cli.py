"""``evaluator`` — run the pad, check configs, inspect the rating store.

Every command prints one clear line on error and returns an exit code: 0 fine, 1 a finding
(e.g. a broken chain, or damaged records that ``ratings``/``stats`` had to leave out, each named
on stderr), 2 bad input (a config or argument error, no store, a damaged store file).

``ratings``, ``verify`` and ``stats`` open the store read-only (SQLite ``mode=ro``): they never
write, migrate or checkpoint it, so they run beside the pad while it writes.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import logging
import os
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from evaluator.rules.cells import safe_cell
from evaluator.rules.errors import ConfigError, DataFileError, EvaluatorError

#: Columns of ``evaluator ratings --format csv`` (and the table), in order.
CSV_COLUMNS: tuple[str, ...] = (
    "seq",
    "id",
    "rated_at",
    "level",
    "score",
    "satisfaction",
    "clerk_id",
    "clerk_name",
    "terminal",
    "serials",
    "matter_codes",
    "matter_names",
    "stage",
    "assess_number",
    "reasons",
    "comment",
    "delivered",
    "hash",
)

#: Seconds ``receipt static`` waits for the sticker to be printed (or the printer to fail).
STATIC_WAIT = 60.0
#: What ``receipt preview`` prints where the config leaves a receipt's text unset.
SAMPLE_HALL = "示例政务服务中心"
SAMPLE_WINDOW = "1号窗口"
SAMPLE_TEMPLATE = "https://hcp.example.org/r?{query}"
#: The sample case of ``receipt preview`` (the screenshots' case and clerk).
SAMPLE_REQUEST: dict[str, Any] = {
    "stage": "deliver",
    "clerk": {"id": "A1023", "name": "陈晓明"},
    "cases": [
        {
            "serial": "4405002026112600001",
            "matter_code": "11440500MB2C9300XR4442111009000",
            "matter_name": "居民身份证换领",
            "kind": "instant",
        }
    ],
}

#: The band on a ``receipt preview`` picture (never in the printer's bytes): which key signed
#: the sample's QR.  With no usable device key, a throw-away one: its QR fails ``qr verify``.
PREVIEW_THROWAWAY = ("样张：临时密钥，二维码无法验证",
                     "specimen – throw-away key, the QR fails qr verify")  # fmt: skip
PREVIEW_DEVICE_KEY = ("样张：本机设备密钥签名", "specimen – signed by the device key {key_id}")

if TYPE_CHECKING:
    from evaluator.config import Config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evaluator", description="窗口评价器: the counter-side 好差评 evaluation pad."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(p: argparse.ArgumentParser, *, db: bool = False) -> None:
        p.add_argument(
            "--config",
            action="append",
            type=Path,
            default=[],
            metavar="FILE",
            help="config file, read after /etc/evaluator/evaluator.toml and conf.d/*.toml "
            "($EVALUATOR_CONFIG_DIR instead of /etc/evaluator); may be given several times, "
            "later files override earlier ones",
        )
        if db:
            p.add_argument("--db", type=Path, help="rating store file (instead of --config)")

    run = sub.add_parser("run", help="run the pad")
    with_config(run)

    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = config_sub.add_parser(
        "check",
        help="report every error in the given files; without FILE, in what `evaluator run` "
        "reads (/etc/evaluator/evaluator.toml, conf.d/*.toml, then --config files)",
    )
    check.add_argument("files", nargs="*", type=Path, metavar="FILE")
    with_config(check)
    show = config_sub.add_parser(
        "show",
        help="print the configuration `evaluator run` would use, each key with the file that "
        "set it (secrets masked); exit 2 when it has problems",
    )
    with_config(show)
    reference = config_sub.add_parser(
        "reference",
        help="generate the config reference from the annotated config/default.toml (between "
        "the configref markers of --out, e.g. docs/technician.md; else the whole file; stdout "
        "without --out); exit 2 naming every key whose annotation is missing or wrong",
    )
    reference.add_argument("--out", type=Path, metavar="FILE")
    reference.add_argument(
        "--defaults", type=Path, metavar="FILE", help="the annotated default (the shipped one)"
    )

    ratings = sub.add_parser("ratings", help="list or export the stored ratings")
    with_config(ratings, db=True)
    ratings.add_argument(
        "--format", choices=("table", "jsonl", "csv"), default="table", help="default: table"
    )
    ratings.add_argument("--output", "-o", type=Path, help="write to FILE instead of stdout")

    verify = sub.add_parser(
        "verify",
        help="check the ratings' and events' hash chains and signatures, and the tables derived "
        "from them (rating_cases, presentations): every table a figure comes from",
    )
    with_config(verify, db=True)

    def with_keys(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--pubkey",
            action="append",
            default=[],
            metavar="KEY",
            help="a registered public key to check signatures with ('ed25519:…', PEM, or a file "
            "holding one); repeat it for a device whose key was replaced; default: the key file "
            "of --config",
        )
        p.add_argument(
            "--unsigned-before",
            type=int,
            default=1,
            metavar="SEQ",
            help="accept unsigned ratings below SEQ (stored before the device had a key: the "
            "city knows the first signed seq); default 1: every unsigned rating is a finding",
        )
        p.add_argument(
            "--unsigned-events-before",
            type=int,
            default=1,
            metavar="SEQ",
            help="the same for the events' own seq; default 1",
        )

    with_keys(verify)

    keys = sub.add_parser("keys", help="the device's signing key")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    for name, text in (
        ("init", "create the device key (never overwrites); prints its public key"),
        ("show", "print the device key's public key and fingerprint"),
    ):
        action = keys_sub.add_parser(name, help=text)
        with_config(action)
        action.add_argument(
            "--key", type=Path, metavar="FILE", help="key file (instead of --config)"
        )

    qr = sub.add_parser("qr", help="receipt QR links")
    qr_sub = qr.add_subparsers(dest="qr_command", required=True, metavar="ACTION")
    qr_verify = qr_sub.add_parser(
        "verify", help="check a receipt QR link as the city does (exit 0 valid, 1 refused)"
    )
    qr_verify.add_argument("url", metavar="URL")
    qr_verify.add_argument(
        "--pubkey", required=True, metavar="KEY", help="the device's registered public key"
    )
    qr_verify.add_argument(
        "--used", type=Path, metavar="FILE", help="file of used nonces (short codes), one a line"
    )
    qr_verify.add_argument("--now", type=int, metavar="EPOCH", help="check at this Unix time")

    receipt = sub.add_parser("receipt", help="the receipt printer: the static QR sticker, previews")
    receipt_sub = receipt.add_subparsers(dest="receipt_command", required=True, metavar="ACTION")
    static = receipt_sub.add_parser(
        "static",
        help="print the window's static QR sticker ([idle] static_qr) on the configured printer "
        "(exit 0 printed, 1 not)",
    )
    with_config(static)
    static.add_argument(
        "--wait",
        type=float,
        default=STATIC_WAIT,
        metavar="SECONDS",
        help=f"give up after this long (default {STATIC_WAIT:g})",
    )
    preview = receipt_sub.add_parser(
        "preview", help="draw the exact bytes a printer would get for a sample receipt as a PNG"
    )
    with_config(preview)
    preview.add_argument(
        "--out",
        type=Path,
        default=Path("receipt-preview.png"),
        metavar="FILE.png",
        help="default: receipt-preview.png",
    )
    preview.add_argument(
        "--static", action="store_true", help="the window's static QR sticker instead"
    )

    provision = sub.add_parser(
        "provision",
        help="one config, device key (and TLS request for mqtts) per row of a fleet sheet "
        "(docs/technician.md §1.6); exit 1 when a row was refused",
    )
    provision.add_argument("sheet", type=Path, metavar="FLEET.csv")
    provision.add_argument(
        "--template", type=Path, metavar="SITE.toml", help="what every pad of the site shares"
    )
    provision.add_argument("--out", type=Path, required=True, metavar="DIR")

    status = sub.add_parser(
        "status", help="the store's state for the city: what waits to be sent, records lost"
    )
    with_config(status, db=True)

    stats = sub.add_parser(
        "stats",
        help="count, mean score and participation per clerk/matter, from what verifies (what "
        "does not is left out, named on stderr and in the JSON's left_out; exit 1)",
    )
    with_config(stats, db=True)
    with_keys(stats)
    stats.add_argument("--format", choices=("table", "json"), default="table")

    shots = sub.add_parser("screenshots", help="render every screen the app reaches to PNG files")
    shots.add_argument("--out", type=Path, default=Path("docs/screens"), metavar="DIR")
    shots.add_argument("--font", type=Path, help="CJK font file (default: search)")

    def duration(text: str) -> float:
        from evaluator.config import parse_duration

        try:
            return parse_duration(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    selftest = sub.add_parser(
        "selftest",
        help="check every part of the pad (config, font, screen, buttons, printer, counter, "
        "broker, storage, clock): one PASS/FAIL/SKIP line each; exit 0 fine, 1 a FAIL, 2 bad "
        "config",
    )
    with_config(selftest)
    selftest.add_argument("--json", action="store_true", help="one JSON document (for tools)")
    selftest.add_argument(
        "--only",
        nargs="+",
        default=[],
        metavar="NAME",
        choices=("font", "screen", "buttons", "printer", "counter", "broker", "storage", "clock"),
        help="run only these checks (the config is always loaded)",
    )
    selftest.add_argument(
        "--button-timeout", type=duration, default=10.0, metavar="DURATION",
        help="how long to wait for each button press; default 10s",
    )  # fmt: skip
    selftest.add_argument(
        "--no-buttons", action="store_true", help="skip the buttons (nobody at the pad)"
    )

    from evaluator.tlscli import add_tls_parser  # the broker link's certificates

    add_tls_parser(sub)

    from evaluator.hubcli import add_hub_parser  # the city receiver (docs/hub.md)

    add_hub_parser(sub)
    return parser


#: The exit code when the reader of stdout went away (``evaluator hub figures | head``): what a
#: shell reports for a tool ended by SIGPIPE (128 + 13), without Python's traceback.
EXIT_PIPE_CLOSED = 141


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code.  Every command's output to a closed pipe ends
    quietly (:data:`EXIT_PIPE_CLOSED`, nothing on stderr): caught here, once for all."""
    try:
        try:
            code = _main(argv)
        finally:
            if sys.stdout is not None:  # None: started with stdout closed (`>&-`)
                sys.stdout.flush()  # what is buffered fails here, not in the interpreter's exit
    except BrokenPipeError:
        _stdout_to_devnull()
        return EXIT_PIPE_CLOSED
    return code


def _stdout_to_devnull() -> None:
    """stdout onto /dev/null, so the interpreter's last flush at exit has nowhere to fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, io.UnsupportedOperation):  # no real stdout (a test's capture)
        pass


def _main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        # Under systemd the pad logs native journal entries with fields (evaluator.journal).
        handlers=[_log_handler()] if args.command == "run" else None,
    )
    try:
        if args.command == "config":
            if args.config_command == "show":
                return cmd_config_show(config_files(args.config))
            if args.config_command == "reference":
                from evaluator.configref import cmd_reference

                return cmd_reference(args.out, args.defaults)
            return cmd_config_check(args.files or config_files(args.config))
        if args.command == "run":
            return cmd_run(config_files(args.config))
        if args.command == "provision":
            from evaluator.provision import provision, report

            return report(provision(args.sheet, args.template, args.out), sys.stdout)
        if args.command == "keys":
            return cmd_keys(args)
        if args.command == "qr":
            return cmd_qr_verify(args.url, args.pubkey, args.used, args.now)
        if args.command == "receipt":
            if args.receipt_command == "static":
                return cmd_receipt_static(args.config, args.wait)
            return cmd_receipt_preview(args.config, args.out, static=args.static)
        if args.command == "selftest":
            from evaluator import selftest

            return selftest.main(config_files(args.config), only=args.only, as_json=args.json,
                                 button_timeout=args.button_timeout,
                                 buttons=not args.no_buttons)  # fmt: skip
        if args.command == "tls":
            from evaluator.tlscli import cmd_tls

            return cmd_tls(args)
        if args.command == "hub":
            from evaluator.hubcli import cmd_hub

            return cmd_hub(args)
        if args.command == "screenshots":
            from evaluator.screenshots import render

            for path in render(args.out, font_path=args.font):
                print(path)
            return 0
        store = _open_store(args)
        try:
            if args.command == "ratings":
                return cmd_ratings(store, args.format, args.output)
            if args.command == "verify":
                return cmd_verify(
                    store, _verify_key(args), args.unsigned_before, args.unsigned_events_before
                )
            if args.command == "status":
                return cmd_status(store)
            return cmd_stats(
                store,
                args.format,
                _verify_key(args, note=sys.stderr),
                args.unsigned_before,
                args.unsigned_events_before,
            )
        finally:
            store.close()
    except ConfigError as exc:
        print(f"evaluator: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    except (DataFileError, EvaluatorError) as exc:
        print(f"evaluator: {exc}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as exc:  # damage the quick check at open could not see
        print(
            f"evaluator: the rating store is damaged ({exc}); do not edit or delete it: copy it "
            "(with -wal and -shm) to safe media and report it (docs/technician.md)",
            file=sys.stderr,
        )
        return 1


def config_files(given: Sequence[Path]) -> list[Path]:
    """The installed configuration files, then ``given`` (the ``--config`` files); a
    :class:`ConfigError` when there is none at all."""
    from evaluator.config import CONFIG_DIR_ENV, SYSTEM_CONFIG_DIR
    from evaluator.config import config_files as search

    files = search(given)
    if not files:
        where = os.environ.get(CONFIG_DIR_ENV) or SYSTEM_CONFIG_DIR
        raise ConfigError(
            f"no configuration: no {where}/evaluator.toml or conf.d/*.toml, and no --config FILE "
            "(e.g. --config config/demo.toml)"
        )
    return files


def cmd_config_show(files: Sequence[Path]) -> int:
    """``config show``: the layered configuration, each key with its file (secrets masked)."""
    from evaluator.config import show_config

    text, problems = show_config(files)
    sys.stdout.write(text)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) found", file=sys.stderr)
        return 2
    return 0


def cmd_config_check(files: Sequence[Path]) -> int:
    from evaluator.config import check_config, service_user_to_check

    problems = check_config(files, service_user=service_user_to_check())
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s) found", file=sys.stderr)
        return 2
    print(f"OK: {', '.join(str(f) for f in files)}")
    return 0


def _log_handler() -> logging.Handler:
    """``evaluator run``'s log: native journald entries when systemd runs it (``JOURNAL_STREAM``
    or the journal's socket), else stderr (evaluator.journal.make_handler)."""
    from evaluator.journal import make_handler

    return make_handler()


def cmd_run(configs: Sequence[Path]) -> int:
    """Run the pad.  The start-up (imports, config, store, screen) allocates many objects that
    live as long as the pad and makes little garbage, so the cyclic garbage collector is paused
    until ``App.run`` has sent READY=1 (it then resumes): some 30 collections, 5–10 ms, less."""
    gc.disable()
    try:
        from evaluator.config import load_config

        config = load_config(configs)
        for handler in logging.getLogger().handlers:  # journald entries name the device
            if hasattr(handler, "device_id"):
                handler.device_id = config.device.id
        # One pad per store (issue 14): taken before anything else is opened (the screen, the
        # level buttons' pins, the store) and held while the pad runs, so a second pad on the
        # same store, whatever the path spelling, stops at once naming the store and the pid.
        from sync.storelock import StoreLocked, lock_store

        try:
            lock = lock_store(config.storage.path)
        except StoreLocked as exc:
            logging.getLogger(__name__).critical("%s", exc)  # journald has it under systemd
            return 2
        except OSError:  # no lock file in a read-only folder: the store's open says what to fix
            lock = None
        from evaluator.app import App

        try:
            return App(config).run()  # which resumes the collector once READY=1 is sent
        except StoreLocked as exc:  # the open's own refusal (the lock above could not be made)
            logging.getLogger(__name__).critical("%s", exc)
            return 2
        finally:
            if lock is not None:
                lock.release()
    finally:
        gc.enable()


def _open_store(args: argparse.Namespace) -> Any:
    """The store named by ``--db`` or by the config, opened read-only."""
    from sync.store import Store

    if args.db is not None:
        path = args.db
    else:
        from evaluator.config import load_config

        config: Config = load_config(config_files(args.config))
        path = config.storage.path
        if not path.exists():
            raise EvaluatorError(f"no rating store at {path} (nothing rated yet?)")
    return Store.open_read_only(path)


def _report_skipped(store: Any, command: str, verb: str) -> int:
    """Name on stderr each damaged record the command left out; 1 if there was any, else 0."""
    damaged = sorted(store.damage.values(), key=lambda d: d.seq)
    if not damaged:
        return 0
    print(
        f"evaluator {command}: {len(damaged)} damaged record(s) skipped, not {verb}"
        " (run `evaluator verify`):",
        file=sys.stderr,
    )
    for d in damaged:
        print(f"  damaged record {d}", file=sys.stderr)
    return 1


def _gap_line(store: Any) -> str | None:
    from sync.store import gap_note

    gap = store.follows_gap()
    return None if gap is None else gap_note(gap)


def _row(record: dict[str, Any], pending: set[str]) -> dict[str, Any]:
    cases = record.get("cases") or []
    clerk = record.get("clerk") or {}
    return {
        "seq": record["seq"],
        "id": record["id"],
        "rated_at": record.get("rated_at", ""),
        "level": record.get("level", ""),
        "score": record.get("score", ""),
        "satisfaction": record.get("satisfaction", ""),
        "clerk_id": clerk.get("id", ""),
        "clerk_name": clerk.get("name", ""),
        "terminal": record.get("terminal") or "",
        "serials": ",".join(c.get("serial", "") for c in cases),
        "matter_codes": ",".join(dict.fromkeys(c.get("matter_code", "") for c in cases)),
        "matter_names": ",".join(dict.fromkeys(c.get("matter_name", "") for c in cases)),
        "stage": record.get("stage", ""),
        "assess_number": record.get("assess_number", ""),
        "reasons": ",".join(r.get("code", "") for r in record.get("reasons") or []),
        "comment": record.get("comment", ""),
        "delivered": "no" if record["id"] in pending else "yes",
        "hash": record.get("hash", ""),
    }


def cmd_ratings(store: Any, fmt: str, output: Path | None) -> int:
    out: TextIO = io.StringIO()
    pending = {r["id"] for r in store.pending(limit=1_000_000)}
    records = list(store.records())
    if fmt == "jsonl":
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    elif fmt == "csv":
        import csv

        writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for record in records:
            writer.writerow({k: safe_cell(v) for k, v in _row(record, pending).items()})
    else:
        cols = ("seq", "rated_at", "level", "score", "clerk_id", "serials", "reasons", "delivered")
        rows = [[str(_row(r, pending)[c]) for c in cols] for r in records]
        out.write(_table(cols, rows))
        out.write(f"{len(records)} rating(s), {len(pending)} awaiting the city's ack\n")
    text = out.getvalue()
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        print(f"wrote {len(records)} rating(s) to {output}", file=sys.stderr)
    gap = _gap_line(store)
    if gap is not None:
        print(f"evaluator ratings: NOTE: {gap}", file=sys.stderr)
    return _report_skipped(store, "ratings", "exported")


def _key_path(args: argparse.Namespace) -> Path:
    if getattr(args, "key", None) is not None:
        return Path(args.key)
    from evaluator.config import load_config

    return load_config(config_files(args.config)).device.key_file


def _print_public(public: Any) -> None:
    print(f"public key:  {public.text}")
    print(f"fingerprint: SHA256:{public.fingerprint}")
    print(f"key id:      {public.key_id}")


def cmd_keys(args: argparse.Namespace) -> int:
    """``keys init`` creates the key (owner-only, never overwriting); ``keys show`` prints its
    public half.  The private key is never printed."""
    from sync.keys import DeviceKey, DeviceKeyError

    path = _key_path(args)
    try:
        key = DeviceKey.create(path) if args.keys_command == "init" else DeviceKey.load(path)
    except DeviceKeyError as exc:
        print(f"evaluator keys {args.keys_command}: {exc}", file=sys.stderr)
        return 2
    if args.keys_command == "init":
        print(
            f"created the device key {path} (owner-only); register this public key with the city:"
        )
    _print_public(key.public)
    return 0


def _verify_key(args: argparse.Namespace, note: TextIO | None = None) -> tuple[list[Any], str]:
    """The public keys ``verify`` checks signatures with, and why there are none: every
    ``--pubkey`` (the registered keys: what proves the records), else the key file of
    ``--config`` (on the device itself: whoever can rewrite the store may have replaced it)."""
    from sync.keys import DeviceKey, DeviceKeyError, PublicKey

    if args.pubkey:
        return [PublicKey.parse(text) for text in args.pubkey], ""
    from evaluator.config import system_config_files

    if not args.config and not system_config_files():
        return [], "give --pubkey (the registered key) or --config"
    try:
        public = DeviceKey.load(_key_path(args)).public
    except DeviceKeyError as exc:
        return [], str(exc)
    print(
        f"NOTE: signatures checked against the key file on this device (key id "
        f"{public.key_id}); --pubkey with the key registered with the city is the proof",
        file=note or sys.stdout,
    )
    return [public], ""


def _seqs(seqs: Sequence[int], limit: int = 10) -> str:
    shown = ", ".join(str(q) for q in seqs[:limit])
    return shown + (f" … ({len(seqs)} in all)" if len(seqs) > limit else "")


def _checker(publics: Sequence[Any]) -> Any:
    """The signature check of the given public keys (``None`` when there are none)."""
    if not publics:
        return None
    by_id = {public.key_id: public for public in publics}

    def check(key_id: str, data: bytes, signature: bytes) -> bool:
        public = by_id.get(key_id)
        return public is not None and public.check(data, signature)

    return check


def cmd_verify(
    store: Any,
    keys: tuple[list[Any], str] = ([], "no key given"),
    unsigned_before: int = 1,
    unsigned_events_before: int = 1,
) -> int:
    """Every table a figure comes from (``sync.audit``): the ratings' hash chain and
    signatures, the events' chain and signatures, ``rating_cases``, ``presentations`` and
    ``presentation_cases`` against the signed records: exit 0 only when all of it holds."""
    from sync.audit import audit

    publics, why_none = keys
    gap = _gap_line(store)
    if gap is not None:
        print(f"NOTE: {gap}")
    damaged: list[Any] = []
    count = sum(1 for _ in store.records(damage=damaged))
    broken = store.verify()
    found = broken is not None or bool(damaged)
    if not found:
        print(f"OK: hash chain intact over {count} rating(s)")
    if broken is not None:
        print(f"BROKEN: first broken {broken}")
    for d in damaged:
        if broken is None or d.seq != broken.seq:  # the first one was just named
            print(f"DAMAGED: record {d}")
    check = _checker(publics)
    result = audit(
        store,
        check,
        unsigned_before=unsigned_before,
        unsigned_events_before=unsigned_events_before,
    )
    events = result.table_findings("events")
    if not events:
        print(f"OK: event chain intact over {result.events} event(s)")
    derived = [f for f in result.findings if f.table not in ("ratings", "events")]
    if not derived:
        print(
            f"OK: rating_cases and {result.presentations} closed presentation(s) agree with "
            "the signed ratings and events"
        )
    if result.open_presentations:
        print(
            f"NOTE: {len(result.open_presentations)} open presentation(s) (on screen, or open "
            "at a power cut until the next start closes them): nothing signed yet, not counted: "
            + ", ".join(result.open_presentations[:10])
        )
    if result.unsigned_counted:
        print(
            f"NOTE: {len(result.unsigned_counted)} presentation(s) counted with cases no signed "
            "record lists (a theme rated item by item and left unfinished, or ended before the "
            "store had events): " + ", ".join(result.unsigned_counted[:10])
        )
    if result.rated_without_row:
        print(
            f"NOTE: {len(result.rated_without_row)} presentation(s) named by verified ratings "
            "have no row (a store written without presentations, or a rated row deleted; no "
            "figure reads it): " + ", ".join(result.rated_without_row[:10])
        )
    if result.findings:
        print(
            f"FINDINGS: {len(result.findings)}, each left out of `evaluator stats` "
            "(docs/technician.md, verify):"
        )
        for finding in result.findings:
            print(f"  {finding}")
    found = found or bool(result.findings)
    if check is None:
        signed, _ = store.signed_count()
        signed_events = store.conn.execute(
            "SELECT count(*) FROM events WHERE json_valid(record)"
            " AND json_extract(record, '$.sig') IS NOT NULL"
        ).fetchone()[0]
        print(
            f"NOT CHECKED: the signatures of {signed} signed record(s) and {signed_events} "
            f"signed event(s): {why_none}"
        )
        return 1 if found or signed or signed_events else 0
    sigs = result.signatures["ratings"]  # every decodable record's, from the audit's walk
    unsigned, bad = sigs.unsigned, sigs.bad
    good = ", ".join(f"{n} by key id {key_id}" for key_id, n in sorted(sigs.signed_by.items()))
    if good:
        print(f"OK: signatures good: {good}")
    events = result.signatures["events"]
    good = ", ".join(f"{n} by key id {key_id}" for key_id, n in sorted(events.signed_by.items()))
    if good:
        print(f"OK: event signatures good: {good}")
    accepted = sigs.accepted
    if accepted:
        print(f"NOTE: {accepted} unsigned record(s) below seq {unsigned_before} accepted")
    if unsigned:
        print(
            f"UNSIGNED: {len(unsigned)} record(s) carry no signature (seq {_seqs(unsigned)}): "
            "nothing proves this device wrote them; records from before it had a key are "
            "accepted with --unsigned-before SEQ (the first signed seq the city holds)"
        )
    if bad:
        print(
            f"BAD SIGNATURE: {len(bad)} record(s) not signed by the given key(s) "
            f"(seq {_seqs(bad)}): altered, or written by another key"
        )
    return 1 if found or unsigned or bad else 0


def cmd_status(store: Any) -> int:
    """What waits for the city's ack, and the fault ``records_lost`` (issue 15): exit 1 while a
    record of the store is lost (its signed loss statement went to the city instead)."""
    _, oldest = store.outbox_summary()
    print(f"outbox: {store.outbox_size()} rating(s), {store.event_outbox_size()} event(s)"
          f" waiting for the city's ack" + (f" (oldest {oldest})" if oldest else ""))  # fmt: skip
    lost = store.losses()
    if not any(lost.values()):
        print("faults: none of the store's (records_lost: no record lost)")
        return 0
    words = "; ".join(f"{stream} seq {_seqs(seqs)}" for stream, seqs in lost.items() if seqs)
    print(
        f"FAULT records_lost: {words}: damaged on the SD card, never sent; signed loss "
        "statements went to the city in their place (replace the SD card, docs/technician.md)"
    )
    return 1


def cmd_stats(
    store: Any,
    fmt: str,
    keys: tuple[list[Any], str] = ([], "no key given"),
    unsigned_before: int = 1,
    unsigned_events_before: int = 1,
) -> int:
    """Art. 33 figures: the device, each clerk, each matter (formulas in docs/technician.md),
    from what verifies (``sync.audit``).  What does not is left out and said three ways: a
    WARNING on stderr naming each record or row and why, the JSON's ``left_out``, exit 1."""
    from sync.audit import stats as audited_stats

    publics, why_none = keys
    stats = audited_stats(
        store,
        _checker(publics),
        unsigned_before=unsigned_before,
        unsigned_events_before=unsigned_events_before,
    )
    if fmt == "json":
        print(json.dumps(stats, ensure_ascii=False, indent=2))
    else:
        _stats_table(stats)
    return _stats_warnings(stats, why_none)


def _stats_warnings(stats: dict[str, Any], why_none: str) -> int:
    """The stderr lines of ``stats``: 1 when something was left out, else 0."""
    err = sys.stderr
    if not stats["signatures_checked"]:
        print(
            f"evaluator stats: WARNING: signatures not checked ({why_none}): the figures are "
            "from records whose hash chain holds, which whoever holds the store can re-seal",
            file=err,
        )
    if stats["open_presentations"]:
        print(
            f"evaluator stats: NOTE: {len(stats['open_presentations'])} open presentation(s) "
            "not counted (nothing signed yet)",
            file=err,
        )
    if stats["unsigned_counted"]:
        print(
            f"evaluator stats: NOTE: {len(stats['unsigned_counted'])} presentation(s) counted "
            "with cases no signed record lists (see `evaluator verify`)",
            file=err,
        )
    left = stats["left_out"]
    if not left:
        return 0
    print(
        f"evaluator stats: WARNING: {len(left)} record(s)/row(s) do not verify and are left "
        "out, not counted (run `evaluator verify`):",
        file=err,
    )
    for item in left:
        where = " ".join(f"{k}={item[k]}" for k in ("seq", "id") if item.get(k) is not None)
        print(f"  {item['table']} {where}: {item['problem']}", file=err)
    return 1


def _stats_table(stats: dict[str, Any]) -> None:
    figures = ("ratings", "mean_score", "should_rate", "rated", "participation")
    device = stats["device"]
    sys.stdout.write(f"device {device['device_id']}: item score {_num(device['item_score'])}\n")
    sections = (
        ("device", [device], ("device_id",), ("cancelled", "represented")),
        ("clerks", stats["clerks"], ("clerk_id", "clerk_name"), ("cancelled", "represented")),
        ("matters", stats["matters"], ("matter_code", "matter_name"), ()),
    )
    follow = ("follow_ups", "follow_mean", "follow_changed")  # beside, never averaged in
    for _title, rows, keys, tail in sections:
        cols = (*keys, *figures, *tail, *follow)
        table = [[_cell(_follow(r, c), c) for c in cols] for r in rows]
        sys.stdout.write("\n" + _table(cols, table))


def _follow(row: dict[str, Any], column: str) -> Any:
    """A stats table cell; the follow-ups' figures from their own object."""
    f = row.get("follow_ups") or {}
    key = {"follow_ups": "count", "follow_mean": "mean_score", "follow_changed": "changed_level"}
    return f.get(key[column]) if column in key else row.get(column)


def _num(value: float | None) -> str:
    """A score figure as the city's ``evaluator hub figures`` prints it (one rule)."""
    from evaluator.rules.figures import score_text

    return score_text(value)


def _cell(value: Any, column: str) -> str:
    if column == "participation":
        from evaluator.rules.figures import percent_text

        return percent_text(value)
    if column in ("mean_score", "item_score", "follow_mean"):
        return _num(value)
    return "" if value is None else str(value)


def _width(text: str) -> int:
    """Display width: hanzi take two columns."""
    return sum(2 if ord(ch) > 0x2E7F else 1 for ch in text)


def _table(cols: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max([_width(c)] + [_width(r[i]) for r in rows]) for i, c in enumerate(cols)]
    lines = []
    for row in [list(cols), *rows]:
        cells = [cell + " " * (w - _width(cell)) for cell, w in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def cmd_qr_verify(url: str, pubkey: str, used: Path | None, now: int | None) -> int:
    """``qr verify``: the city's check of a receipt's QR link (``evaluator.rules.ratelink``)."""
    import time

    from evaluator.rules import ratelink
    from sync.keys import PublicKey

    public = PublicKey.parse(pubkey)
    nonces: set[str] = set()
    if used is not None:
        try:
            text = used.read_text(encoding="utf-8")
        except OSError as exc:
            raise EvaluatorError(f"cannot read the used nonces {used}: {exc}") from exc
        nonces = {ratelink.normalise_code(line) for line in text.splitlines() if line.strip()}
    verdict = ratelink.verify(
        url,
        key_id=public.key_id,
        check=public.check,
        now=int(time.time()) if now is None else now,
        used_nonces=nonces,
    )
    link = verdict.link
    if not verdict.ok:
        print(f"REFUSED: {verdict.reason}: {verdict.message}")
        return 1
    assert link is not None
    print(f"VALID: device {link.device_id}, serials {','.join(link.serials)}, matter "
          f"{link.matter_code}, clerk {link.clerk}, short code {link.short_code}, expires "
          f"{link.expires}")  # fmt: skip
    return 0


def _receipt_config(configs: Sequence[Path]) -> Config:
    from evaluator.config import load_config

    return load_config(config_files(configs))


def _sticker(config: Config) -> Any:
    """The window's static QR sticker: ``[idle] static_qr`` (the code the idle screen shows),
    the hall and the window."""
    from printer import Sticker

    url = config.idle.static_qr
    if not url:
        raise ConfigError(
            "[idle] static_qr is not set: the sticker carries that URL (the idle screen shows it)"
        )
    return Sticker(hall=config.receipt.hall, window=config.device.window, url=url)


def cmd_receipt_static(configs: Sequence[Path], wait: float) -> int:
    """``receipt static``: the window's static QR sticker (art. 17(3)) on the configured
    printer, through the pad's spooler code (no spool directory: the running pad keeps its own);
    exit 0 once printed, 1 when the printer fails or ``wait`` seconds pass, with its state."""
    from evaluator.devices import make_spooler
    from evaluator.receipts import FAILING

    config = _receipt_config(configs)
    sticker = _sticker(config)
    spooler = make_spooler(config, spool=False)
    where = spooler.connection.spec.describe()
    spooler.start()
    try:
        spooler.submit(sticker)
        spooler.wait_until(
            lambda s: bool(s.printed or s.dropped) or (s.phase == "waiting" and s.state in FAILING),
            wait,
        )
        status = spooler.status  # before stop() cuts a hung write short
    finally:
        spooler.stop()
    detail = f": {status.detail}" if status.detail else ""
    if status.printed:
        print(f"printed the static QR sticker ({sticker.url}) on {where}; printer {status.state}"
              f"{detail}")  # fmt: skip
        return 0
    if not status.dropped and status.state not in FAILING:
        detail = f": no answer within {wait:g} s ({status.phase})"
    print(f"NOT printed: printer {status.state} ({where}){detail}")
    return 1


def cmd_receipt_preview(configs: Sequence[Path], out: Path, *, static: bool) -> int:
    """``receipt preview``: the exact bytes the configured printer would get for a sample receipt
    (or the static sticker), drawn as a PNG.  The sample's link is signed with the device key
    when ``[device] key_file`` loads (read only: never created here), so its QR passes
    ``qr verify`` against the registered key; else with a throw-away key.  A band above the
    paper says which (:data:`PREVIEW_DEVICE_KEY`, :data:`PREVIEW_THROWAWAY`); the printed bytes
    carry no band."""
    import dataclasses
    import time

    from printer import PrinterProfile
    from printer.preview import page_image, png, with_notice
    from printer.render import receipt_bytes, sticker_bytes

    config = _receipt_config(configs)
    profile = PrinterProfile.from_config(config.printer.profile)
    notice: Sequence[str] = ()
    if static:
        sticker = _sticker(config)
        data = sticker_bytes(sticker, profile)
        what, url = "the static QR sticker", sticker.url
    else:
        from evaluator.receipts import build
        from evaluator.rules.request import parse_request

        rc = config.receipt
        sample = dataclasses.replace(
            config,
            receipt=dataclasses.replace(
                rc, url_template=rc.url_template or SAMPLE_TEMPLATE, hall=rc.hall or SAMPLE_HALL
            ),
            device=dataclasses.replace(config.device, window=config.device.window or SAMPLE_WINDOW),
        )
        key, device_key = _preview_key(config.device.key_file)
        request = parse_request(SAMPLE_REQUEST)
        slip, receipt = build(sample, request, request.serials, key=key, wall=time.time())
        data = receipt_bytes(receipt, profile)
        if device_key:
            notice = [line.format(key_id=key.key_id) for line in PREVIEW_DEVICE_KEY]
            what = f"a sample receipt (its QR signed with the device key {key.path}, key id "
            what += f"{key.key_id})"
        else:
            notice = PREVIEW_THROWAWAY
            what = "a sample receipt (its QR signed with a throw-away key: qr verify refuses it)"
        url = slip.url
    image = page_image(data, profile)
    if notice:
        from printer.glyphs import find_font

        image = with_notice(image, notice, find_font(profile.font))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(png(image))
    print(f"wrote {out}: {what}, {len(data)} bytes on {profile.paper} paper "
          f"(text {profile.text}, QR {profile.qr})")  # fmt: skip
    print(f"QR: {url} ({len(url)} characters)")
    return 0


def _preview_key(path: Path) -> tuple[Any, bool]:
    """The device key at ``path`` and True when it loads (read only, never created); else a
    throw-away key and False, after a NOTE on stderr naming the path and why (never the key)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from sync.keys import DeviceKey, DeviceKeyError

    try:
        return DeviceKey.load(path), True
    except DeviceKeyError as exc:
        print(f"evaluator receipt preview: NOTE: no usable device key ({exc}); the sample QR is "
              "signed with a throw-away key and fails `qr verify`", file=sys.stderr)  # fmt: skip
    return DeviceKey(Path("(throw-away)"), Ed25519PrivateKey.generate()), False


if __name__ == "__main__":
    raise SystemExit(main())
