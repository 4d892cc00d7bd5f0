"""``evaluator selftest``: every check against the shipped stand-ins (dummy screen, dummy:// and
sim:// links, loop://, the dummy printer, a real mosquitto), and each failure with its fix: the
broker stopped, a read-only storage folder (permissions that bind, also for root), buttons on
gpiozero's MockFactory pressed by the test or not at all, a crash inside one check."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from evaluator import selftest
from evaluator.cli import main
from evaluator.rules import ratelink
from evaluator.rules.clock import kernel_clock_synced
from printer.decode import Text, decode
from sync.keys import DeviceKey
from tests.conftest import Broker, require_binary
from tests.printer.fakes import PATIENCE, PipeReader, cuts, qr_texts

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "config" / "demo.toml"
#: Every check but the clock: the machine's NTP state is not the test's to choose.
NOT_CLOCK = [name for name in selftest.CHECKS[1:] if name != "clock"]


def site(
    tmp_path: Path,
    *,
    mqtt_port: int,
    port: str = "dummy://",
    printer: str = 'kind = "dummy"\n',
    extra: str = "",
) -> Path:
    """The demo config with the stand-ins: dummy screen, ``port``, the ``printer`` (the dummy)
    printing every receipt, the store in ``tmp_path``."""
    path = tmp_path / "site.toml"
    path.write_text(
        f'[counter]\nport = "{port}"\n[mqtt]\nport = {mqtt_port}\n'
        f"[storage]\npath = {json.dumps(str(tmp_path / 'store' / 'ratings.db'))}\n"
        f'[screen]\ndriver = "dummy"\n'
        f'[receipt]\nprint = "always"\nurl_template = "https://hcp.example.org/r?{{query}}"\n'
        f'hall = "汕头市政务服务中心"\n[printer]\n{printer}{extra}',
        encoding="utf-8",
    )
    return path


def lines(out: str) -> dict[str, tuple[str, str]]:
    """Check name → (status, rest of the line)."""
    found = {}
    for line in out.splitlines():
        status, _, rest = line.partition("  ")
        if status in ("PASS", "FAIL", "SKIP"):
            name, _, detail = rest.strip().partition(" ")
            found[name] = (status, detail.strip())
    return found


@pytest.mark.parametrize("port", ["dummy://", "sim://demo", "loop://"])
def test_the_stand_ins_pass_or_skip_and_exit_0(
    tmp_path: Path, broker: Broker, capsys: pytest.CaptureFixture[str], port: str
) -> None:
    config = site(tmp_path, mqtt_port=broker.port, port=port)
    code = main(["selftest", "--config", str(DEMO), "--config", str(config), "--only", *NOT_CLOCK])
    out = capsys.readouterr().out
    seen = lines(out)
    assert list(seen) == ["config", *NOT_CLOCK], out
    assert all(status in ("PASS", "SKIP") for status, _ in seen.values()), out
    assert code == 0
    for name in ("config", "font", "screen", "printer", "counter", "broker", "storage"):
        assert seen[name][0] == "PASS", out
    assert "drew 满意评价窗口" in seen["screen"][1]
    assert "printed a TEST receipt" in seen["printer"][1]
    assert "hcp/v1/demo-0001/selftest (acked)" in seen["broker"][1]
    if port == "loop://":
        assert "the loopback probe came back" in seen["counter"][1]
    # No terminal here and no pins fitted: the buttons are skipped, saying why.
    assert seen["buttons"] == ("SKIP", "no level button fitted ([buttons] pins all -1)")
    assert out.rstrip().endswith("7 passed, 0 failed, 1 skipped")
    # The storage check wrote no rating: no store was created, only its folder; the probe is gone.
    assert list((tmp_path / "store").iterdir()) == []


def test_unconfigured_parts_are_skipped_with_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "off.toml"
    config.write_text(
        f'[counter]\nport = ""\n[mqtt]\nenabled = false\n[screen]\ndriver = "dummy"\n'
        f"[storage]\npath = {json.dumps(str(tmp_path / 'r.db'))}\n",
        encoding="utf-8",
    )
    assert (
        main(
            [
                "selftest",
                "--config",
                str(DEMO),
                "--config",
                str(config),
                "--only",
                "printer",
                "counter",
                "broker",
            ]
        )
        == 0
    )
    seen = lines(capsys.readouterr().out)
    assert seen["printer"] == ("SKIP", 'no printer used ([receipt] print = "never")')
    assert seen["counter"] == ("SKIP", 'no counter link ([counter] port = "")')
    assert seen["broker"] == ("SKIP", "MQTT off ([mqtt] enabled = false)")


def test_with_the_broker_stopped_the_broker_line_fails_with_the_fix(
    tmp_path: Path, broker: Broker, capsys: pytest.CaptureFixture[str]
) -> None:
    config = site(tmp_path, mqtt_port=broker.port)
    broker.stop()
    code = main(
        ["selftest", "--config", str(DEMO), "--config", str(config), "--only", "broker", "storage"]
    )
    out = capsys.readouterr().out
    seen = lines(out)
    assert code == 1
    status, detail = seen["broker"]
    assert status == "FAIL"
    assert f"cannot connect to 127.0.0.1:{broker.port}: connection refused" in detail
    assert "— fix: start the broker or open the network" in detail
    assert seen["storage"][0] == "PASS"  # one failure does not stop the other checks


def test_json_has_one_entry_per_check(
    tmp_path: Path, broker: Broker, capsys: pytest.CaptureFixture[str]
) -> None:
    config = site(tmp_path, mqtt_port=broker.port)
    code = main(["selftest", "--config", str(DEMO), "--config", str(config), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert [c["name"] for c in doc["checks"]] == list(selftest.CHECKS)
    assert doc["exit"] == code
    assert all(set(c) == {"name", "status", "detail", "fix"} for c in doc["checks"])
    clock = doc["checks"][-1]
    # The machine's real NTP state, read the way the pad reads it.
    assert clock["status"] == ("PASS" if kernel_clock_synced() else "FAIL")
    assert code == (0 if kernel_clock_synced() else 1)


@pytest.mark.parametrize("synced", [True, False])
def test_the_clock_line_says_whether_the_kernel_clock_is_synchronised(
    tmp_path: Path, synced: bool
) -> None:
    config = site(tmp_path, mqtt_port=1)
    options = selftest.Options(clock_synced=lambda: synced)
    results, code = selftest.run([DEMO, config], only=["clock"], options=options)
    clock = results[-1]
    assert (clock.name, clock.status, code) == ("clock", "PASS" if synced else "FAIL", 1 - synced)
    if not synced:
        assert "timedatectl" in clock.fix


def test_a_crash_inside_one_check_is_its_fail_line(tmp_path: Path) -> None:
    config = site(tmp_path, mqtt_port=1)
    options = selftest.Options(clock_synced=lambda: 1 // 0 == 0)
    results, code = selftest.run([DEMO, config], only=["clock", "storage"], options=options)
    by_name = {r.name: r for r in results}
    assert by_name["clock"].status == "FAIL" and "ZeroDivisionError" in by_name["clock"].detail
    assert by_name["storage"].status == "PASS"
    assert code == 1


def test_a_bad_config_exits_2_with_its_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[mqtt]\nport = "many"\n', encoding="utf-8")
    assert main(["selftest", "--config", str(DEMO), "--config", str(bad)]) == 2
    out = capsys.readouterr().out
    assert out.startswith("FAIL  config ") and "mqtt.port" in out
    assert "evaluator config check" in out


def run_without_write_rights(args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run the CLI where file permissions bind: as root, without the capabilities that bypass
    them (``setpriv``); other users need no help."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "setpriv (util-linux) is needed to test a read-only folder as root"
        prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]
    return subprocess.run(
        [*prefix, sys.executable, "-m", "evaluator", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO), SDL_VIDEODRIVER="dummy"),
    )


def test_a_read_only_storage_folder_fails_storage_with_the_fix(tmp_path: Path) -> None:
    config = site(tmp_path, mqtt_port=1)
    folder = tmp_path / "store"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        result = run_without_write_rights(
            ["selftest", "--config", str(DEMO), "--config", str(config), "--only", "storage"]
        )
    finally:
        folder.chmod(0o755)
    assert result.returncode == 1, result.stdout + result.stderr
    status, detail = lines(result.stdout)["storage"]
    assert status == "FAIL"
    assert f"cannot write and fsync a file in {folder}" in detail
    assert f"— fix: make {folder} writable by the pad's user" in detail
    assert list(folder.iterdir()) == []


# -- the printer: a TEST receipt, its QR signed with a throw-away key ---------------------------


def test_the_test_receipt_says_test_and_its_qr_is_not_the_device_key(tmp_path: Path) -> None:
    fifo = tmp_path / "lp0"
    os.mkfifo(fifo)
    reader = PipeReader(str(fifo))
    reader.start()
    try:
        config = site(tmp_path, mqtt_port=1, printer=f'kind = "file"\npath = "{fifo}"\n')
        results, code = selftest.run([DEMO, config], only=["printer"])
        assert reader.wait_for(lambda data: cuts(data) == 1, PATIENCE)
        paper = decode(reader.data())
    finally:
        reader.close()
    assert (results[-1].status, code) == ("PASS", 0), results
    assert results[-1].detail.startswith("printed a TEST receipt (SELFTEST-")
    lines_printed = [e.text for e in paper if isinstance(e, Text)]
    assert any("【测试 TEST】" in line for line in lines_printed), lines_printed
    assert any("SELFTEST-" in line for line in lines_printed), lines_printed
    [url] = qr_texts(paper)
    parsed = ratelink.parse(url)
    assert parsed is not None and parsed[0].serials[0].startswith("SELFTEST-")
    # The device key (created where the pad keeps it) never signed it: the city refuses it.
    key = DeviceKey.create(tmp_path / "store" / "device.key")
    verdict = ratelink.verify(url, key_id=key.key_id, check=key.public.check, now=parsed[0].issued)
    assert verdict.reason == "wrong_key"


def test_a_printer_that_is_not_there_fails_with_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "lp9"
    config = site(tmp_path, mqtt_port=1, printer=f'kind = "file"\npath = "{missing}"\n')
    results, code = selftest.run([DEMO, config], only=["printer"])
    printer = results[-1]
    assert (printer.status, code) == ("FAIL", 1)
    assert printer.detail.startswith(f"test receipt NOT printed on file {missing}: printer offline")
    assert "check the printer's power, paper, cover and cable" in printer.fix


# -- the level buttons, on MockFactory pins the test presses when it is asked -----------------

PINS = {
    "very_satisfied": 17,
    "satisfied": 27,
    "basically_satisfied": 22,
    "dissatisfied": 23,
    "very_dissatisfied": 24,
}


class Technician:
    """The prompt stream: on each "press …" prompt, presses the asked pin from another thread
    (as a person would), or the pin of ``wrong`` instead, or nothing once ``stop_after``
    buttons are pressed."""

    def __init__(self, factory: MockFactory, *, stop_after: int = 99, wrong: int | None = None):
        self.factory = factory
        self.stop_after = stop_after
        self.wrong = wrong
        self.prompts: list[str] = []
        self.threads: list[threading.Thread] = []

    def write(self, text: str) -> int:
        if text.startswith("press "):
            self.prompts.append(text)
            if len(self.prompts) <= self.stop_after:
                pin = (
                    self.wrong
                    if self.wrong is not None
                    else int(text.split("GPIO ")[1].split(")")[0])
                )
                # Pressed at once, in this call: the check is already listening when it asks,
                # so the outcome never races its (short) timeout on a loaded machine.
                self.press(pin)
        return len(text)

    def flush(self) -> None:
        pass

    def press(self, pin: int) -> None:
        mock = self.factory.pin(pin)
        mock.drive_low()
        mock.drive_high()


def run_buttons(tmp_path: Path, technician: Technician, timeout: float) -> selftest.Result:
    config = site(
        tmp_path,
        mqtt_port=1,
        extra='[buttons]\npin_factory = "mock"\n'
        + "".join(f"{name} = {pin}\n" for name, pin in PINS.items()),
    )
    options = selftest.Options(
        button_timeout=timeout,
        interactive=True,
        ask=technician,  # type: ignore[arg-type]
        pin_factory=technician.factory,
    )
    try:
        results, _ = selftest.run([DEMO, config], only=["buttons"], options=options)
    finally:
        for thread in technician.threads:
            thread.join()
        technician.factory.reset()
    return results[-1]


def test_each_button_pressed_when_asked_passes(tmp_path: Path) -> None:
    technician = Technician(MockFactory())
    result = run_buttons(tmp_path, technician, timeout=30.0)
    assert result.status == "PASS", result
    assert [p.split(" (")[0] for p in technician.prompts] == [
        "press 非常满意",
        "press 满意",
        "press 基本满意",
        "press 不满意",
        "press 非常不满意",
    ]
    assert result.detail == "5 button(s) pressed: 非常满意, 满意, 基本满意, 不满意, 非常不满意"


def test_a_button_not_pressed_in_time_fails_naming_its_pin(tmp_path: Path) -> None:
    technician = Technician(MockFactory(), stop_after=2)
    result = run_buttons(tmp_path, technician, timeout=0.3)
    assert result.status == "FAIL"
    assert result.detail.startswith("基本满意 (GPIO 22) not pressed within 0.3 s")
    assert result.detail.endswith("passed: 非常满意, 满意")
    assert "GPIO 22" in result.fix and "[buttons] basically_satisfied" in result.fix
    assert len(technician.prompts) == 3  # it stopped at the first failure


def test_a_wrong_button_is_named(tmp_path: Path) -> None:
    technician = Technician(MockFactory(), wrong=PINS["satisfied"], stop_after=1)
    result = run_buttons(tmp_path, technician, timeout=0.3)
    assert result.status == "FAIL"
    assert result.detail.startswith(
        "非常满意 (GPIO 17) not pressed within 0.3 s (pressed instead: 满意)"
    )


def test_buttons_are_skipped_without_a_terminal_or_with_no_buttons(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = site(tmp_path, mqtt_port=1, extra='[buttons]\npin_factory = "mock"\nsatisfied = 27\n')
    assert (
        main(["selftest", "--config", str(DEMO), "--config", str(config), "--only", "buttons"]) == 0
    )
    assert lines(capsys.readouterr().out)["buttons"] == (
        "SKIP",
        "not interactive (no terminal): nobody to press the buttons",
    )
    options = selftest.Options(interactive=True, buttons=False)
    results, code = selftest.run([DEMO, config], only=["buttons"], options=options)
    assert (results[-1].status, results[-1].detail, code) == ("SKIP", "--no-buttons", 0)


def test_the_broker_check_connects_as_the_pad_does_tls_certificate_and_urls_in_turn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Against the shipped city broker (TLS, client certificates, ACL): the check uses the
    pad's URLs in turn (a dead first one is passed over), its protocol and certificate, and
    its own selftest topic; without the certificate it fails with the TLS keys named."""
    from sync.tlscerts import create_tls_key, make_csr, sign_csr
    from tests.support import free_port
    from tests.tlsbroker import CityPki, TlsBroker

    require_binary("mosquitto")
    pki = CityPki(tmp_path / "pki")
    key = create_tls_key(tmp_path / "pad.key")
    (tmp_path / "pad.crt").write_bytes(sign_csr(make_csr(key, "demo-0001"), pki.ca))
    city = TlsBroker(pki)
    city.start()
    try:
        dead = free_port()
        urls = f'urls = ["mqtts://127.0.0.1:{dead}", "mqtts://127.0.0.1:{city.port}"]\n'
        tls = (
            f"tls_ca = {json.dumps(str(pki.ca.cert_path))}\n"
            f"tls_cert = {json.dumps(str(tmp_path / 'pad.crt'))}\n"
            f"tls_key = {json.dumps(str(tmp_path / 'pad.key'))}\n"
        )
        good = site(tmp_path, mqtt_port=1883)
        good.write_text(good.read_text(encoding="utf-8").replace(
            "[mqtt]\n", f"[mqtt]\n{urls}{tls}"), encoding="utf-8")  # fmt: skip
        code = main(["selftest", "--config", str(DEMO), "--config", str(good), "--only", "broker"])
        out = capsys.readouterr().out
        seen = lines(out)
        assert seen["broker"][0] == "PASS", out
        assert f"mqtts://127.0.0.1:{city.port}: connected" in seen["broker"][1]
        assert code == 0

        # The same broker without the pad's certificate: refused at TLS, the fix names the keys.
        bare = tmp_path / "bare.toml"
        bare.write_text(
            f'[mqtt]\nurls = ["mqtts://127.0.0.1:{city.port}"]\n'
            f'tls_ca = {json.dumps(str(pki.ca.cert_path))}\ntls_cert = ""\ntls_key = ""\n',
            encoding="utf-8",
        )
        code = main(["selftest", "--config", str(DEMO), "--config", str(good), "--config",
                     str(bare), "--only", "broker"])  # fmt: skip
        out = capsys.readouterr().out
        status, detail = lines(out)["broker"]
        assert status == "FAIL", out
        assert "tls_ca, tls_cert, tls_key" in detail
        # The cause in words (issue 14), not just "no CONNACK".
        assert "the broker refused our client certificate (tls_cert), or requires one" in detail
        assert code != 0

        # A broker certificate of another CA: named as such.
        other = CityPki(tmp_path / "other-pki")
        stranger = tmp_path / "stranger.toml"
        stranger.write_text(
            f'[mqtt]\nurls = ["mqtts://127.0.0.1:{city.port}"]\n'
            f"tls_ca = {json.dumps(str(other.ca.cert_path))}\n",
            encoding="utf-8",
        )
        main(["selftest", "--config", str(DEMO), "--config", str(good), "--config",
              str(stranger), "--only", "broker"])  # fmt: skip
        status, detail = lines(capsys.readouterr().out)["broker"]
        assert status == "FAIL"
        assert "the broker's certificate is not signed by our CA (tls_ca)" in detail
    finally:
        city.remove()
