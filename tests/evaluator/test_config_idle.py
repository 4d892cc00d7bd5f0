"""``[idle]``: the static QR URL and the screensaver time, checked like every other key."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaluator.config import STATIC_QR_MAX, check_config, load_config


def site(tmp_path: Path, idle: str) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(f'[device]\nid = "unit-1"\n[idle]\n{idle}\n', encoding="utf-8")
    return path


def test_the_defaults_show_no_qr_and_sleep_after_ten_minutes(tmp_path: Path) -> None:
    idle = load_config([site(tmp_path, "")]).idle
    assert (idle.static_qr, idle.screensaver_after) == ("", 600.0)


@pytest.mark.parametrize(
    "url",
    [
        "https://hcp.example.org/w/440500-hall1-w12",
        "http://10.0.0.5:8080/rate?window=12&hall=1#top",
        "HTTPS://HCP.EXAMPLE.ORG/W/12",
        "https://hcp.example.org/" + "x" * (STATIC_QR_MAX - len("https://hcp.example.org/")),
    ],
)
def test_an_http_or_https_url_of_at_most_200_characters_is_taken(tmp_path: Path, url: str) -> None:
    assert load_config([site(tmp_path, f'static_qr = "{url}"')]).idle.static_qr == url


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("https://hcp.example.org/" + "x" * 200, "at most 200 characters"),
        ("hcp.example.org/w/12", "http:// or https:// URL"),
        ("ftp://hcp.example.org/w/12", "http:// or https:// URL"),
        ("javascript:alert(1)", "http:// or https:// URL"),
        ("https://", "http:// or https:// URL"),
        ("https:///w/12", "http:// or https:// URL"),
        ("https://hcp.example.org/w 12", "without spaces"),
        # a control character is refused before the URL rule, by the rule every string follows
        ("https://hcp.example.org/w/12\\n", "control character U+000A"),
        ("https://hcp.example.org/w/\\t12", "control character U+0009"),
    ],
)
def test_anything_else_is_refused_with_its_line(tmp_path: Path, url: str, says: str) -> None:
    [problem] = check_config([site(tmp_path, f'static_qr = "{url}"')])
    assert problem.key == "idle.static_qr" and problem.line == 4
    assert says in problem.expected


def test_a_bare_host_gets_a_suggestion(tmp_path: Path) -> None:
    [problem] = check_config([site(tmp_path, 'static_qr = "hcp.example.org/w/12"')])
    assert "did you mean 'https://hcp.example.org/w/12'?" in str(problem)


@pytest.mark.parametrize(("text", "seconds"), [('"0s"', 0.0), ('"5m"', 300.0), ('"1h"', 3600.0)])
def test_screensaver_after_is_a_duration_zero_meaning_never(
    tmp_path: Path, text: str, seconds: float
) -> None:
    config = load_config([site(tmp_path, f"screensaver_after = {text}")])
    assert config.idle.screensaver_after == seconds


@pytest.mark.parametrize("text", ["600", '"-1m"', '"soon"'])
def test_screensaver_after_refuses_what_is_not_a_duration(tmp_path: Path, text: str) -> None:
    [problem] = check_config([site(tmp_path, f"screensaver_after = {text}")])
    assert problem.key == "idle.screensaver_after"
