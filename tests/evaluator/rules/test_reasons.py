"""Specification of the 差评 reason list (art. 11, 23, 27–29) and its data-file validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaluator.rules.errors import DataFileError, EvaluatorError
from evaluator.rules.levels import Level
from evaluator.rules.reasons import (
    COMMENT_MAX,
    OTHER_CODE,
    OTHER_TEXT,
    TARGETS,
    ReasonCatalog,
    default_reasons_path,
    load_reasons,
)

# Copied from shared/docs/domain.md, "Current national reason list (评价内容 v2)".
VERY_DISSATISFIED = {
    "108": ("在办事指南之外增加新的审批条件", "matter"),
    "109": ("需提供办事指南之外的申报材料", "matter"),
    "110": ("无理由超过法定办理时间", "matter"),
    "111": ("办事指南提供样本有错", "matter"),
    "112": ("承诺在线收取申报材料实际无法收取", "matter"),
    "113": ("多头跑窗口和部门", "matter"),
    "114": ("跑动次数与承诺的不一致", "matter"),
    "115": ("服务态度差效率低", "clerk"),
}
DISSATISFIED = {
    "207": ("没有提供材料样本", "matter"),
    "208": ("没有提供材料清单", "matter"),
    "209": ("未在承诺时间内办结", "matter"),
    "210": ("同样内容的证明材料被要求多次提交", "matter"),
    "211": ("承诺网办但无法在线办理", "matter"),
    "212": ("在线预约办理后到实体大厅重复取号排队", "matter"),
    "213": ("窗口人员业务不熟练", "clerk"),
    "214": ("服务态度生硬", "clerk"),
}
NATIONAL = [
    (code, text, Level.VERY_DISSATISFIED, target)
    for code, (text, target) in VERY_DISSATISFIED.items()
] + [(code, text, Level.DISSATISFIED, target) for code, (text, target) in DISSATISFIED.items()]


@pytest.fixture(scope="module")
def shipped() -> ReasonCatalog:
    return load_reasons()


# --- the shipped list -------------------------------------------------------------------------


def test_default_path_is_the_shipped_config_file() -> None:
    path = default_reasons_path()
    assert path.parts[-2:] == ("config", "reasons.toml")
    assert path.is_file()


def test_shipped_file_loads_with_explicit_path_too() -> None:
    assert load_reasons(default_reasons_path()) == load_reasons()


def test_shipped_file_has_a_version(shipped: ReasonCatalog) -> None:
    assert shipped.version.strip()


def test_shipped_codes_are_exactly_108_to_115_and_207_to_214(shipped: ReasonCatalog) -> None:
    codes = [r.code for r in shipped.reasons]
    assert sorted(codes) == [str(c) for c in range(108, 116)] + [str(c) for c in range(207, 215)]
    assert len(codes) == len(set(codes)) == 16


@pytest.mark.parametrize(
    ("code", "text", "level", "target"), NATIONAL, ids=[n[0] for n in NATIONAL]
)
def test_shipped_reason_matches_national_table(
    shipped: ReasonCatalog, code: str, text: str, level: Level, target: str
) -> None:
    reason = shipped.get(code)
    assert reason is not None
    assert reason.text == text
    assert reason.level is level
    assert reason.target == target


def test_shipped_reasons_are_only_for_bad_levels(shipped: ReasonCatalog) -> None:
    assert all(r.level.is_bad for r in shipped.reasons)
    for level in Level:
        if not level.is_bad:
            assert shipped.for_level(level) == ()


def test_other_is_not_a_listed_reason(shipped: ReasonCatalog) -> None:
    assert shipped.get(OTHER_CODE) is None
    assert OTHER_TEXT not in {r.text for r in shipped.reasons}
    assert OTHER_TEXT == "其他"
    assert COMMENT_MAX == 150


def test_get_unknown_code_is_none(shipped: ReasonCatalog) -> None:
    assert shipped.get("999") is None
    assert shipped.get("") is None


# --- for_level --------------------------------------------------------------------------------


def test_for_level_defaults_to_both_targets_in_file_order(shipped: ReasonCatalog) -> None:
    assert TARGETS == ("clerk", "matter")
    assert [r.code for r in shipped.for_level(Level.VERY_DISSATISFIED)] == list(VERY_DISSATISFIED)
    assert [r.code for r in shipped.for_level(Level.DISSATISFIED)] == list(DISSATISFIED)


@pytest.mark.parametrize(
    ("level", "targets", "codes"),
    [
        (Level.VERY_DISSATISFIED, ("clerk",), ["115"]),
        (Level.VERY_DISSATISFIED, ("matter",), [str(c) for c in range(108, 115)]),
        (Level.DISSATISFIED, ("clerk",), ["213", "214"]),
        (Level.DISSATISFIED, ("matter",), [str(c) for c in range(207, 213)]),
        (Level.DISSATISFIED, ("clerk", "matter"), [str(c) for c in range(207, 215)]),
        (Level.DISSATISFIED, (), []),
    ],
)
def test_for_level_filters_by_targets(
    shipped: ReasonCatalog, level: Level, targets: tuple[str, ...], codes: list[str]
) -> None:
    chosen = shipped.for_level(level, targets)
    assert [r.code for r in chosen] == codes
    assert all(r.level is level and r.target in targets for r in chosen)


# --- broken files -----------------------------------------------------------------------------

VALID = """\
version = "test"

[[reason]]
code = "108"
level = "very_dissatisfied"
target = "matter"
text = "在办事指南之外增加新的审批条件"

[[reason]]
code = "207"
level = "dissatisfied"
target = "matter"
text = "没有提供材料样本"
"""


def _entry(
    code: str, level: str = "dissatisfied", target: str = "clerk", text: str = "某原因"
) -> str:
    return (
        f'\n[[reason]]\ncode = "{code}"\nlevel = "{level}"\ntarget = "{target}"\ntext = "{text}"\n'
    )


BROKEN: list[tuple[str, str, str]] = [
    ("duplicate_code", VALID + _entry("207"), "duplicate code '207'"),
    ("good_level", VALID + _entry("406", level="satisfied"), "好评"),
    ("unknown_level", VALID + _entry("300", level="meh"), "unknown level 'meh'"),
    ("bad_target", VALID + _entry("213", target="agency"), "target 'agency'"),
    ("empty_text", VALID + _entry("213", text="  "), "empty text"),
    ("empty_code", VALID + _entry(""), "empty or reserved"),
    ("reserved_other", VALID + _entry(OTHER_CODE), "reserved"),
    ("unknown_key", VALID + _entry("213") + 'note = "x"\n', "unknown keys ['note']"),
    (
        "no_very_dissatisfied",
        'version = "t"\n' + _entry("207"),
        "no reason for level very_dissatisfied",
    ),
    (
        "no_dissatisfied",
        'version = "t"\n' + _entry("115", level="very_dissatisfied"),
        "no reason for level dissatisfied",
    ),
    ("no_entries", 'version = "t"\n', "no [[reason]] entries"),
    ("reason_not_a_table", 'reason = ["108"]\n', "expected a table"),
    ("invalid_toml", VALID + "[[reason]\ncode = 1\n", "not valid TOML"),
]


@pytest.mark.parametrize(("text", "fragment"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_broken_reason_file_is_refused(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "reasons.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataFileError) as info:
        load_reasons(path)
    assert fragment in str(info.value)
    assert str(path) in str(info.value)


def test_valid_fixture_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "reasons.toml"
    path.write_text(VALID, encoding="utf-8")
    catalog = load_reasons(path)
    assert catalog.version == "test"
    assert [r.code for r in catalog.reasons] == ["108", "207"]


def test_missing_file_is_a_data_file_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(DataFileError, match="cannot read reason list") as info:
        load_reasons(path)
    assert str(path) in str(info.value)


def test_every_problem_is_listed(tmp_path: Path) -> None:
    path = tmp_path / "reasons.toml"
    path.write_text(VALID + _entry("207") + _entry("213", target="agency"), encoding="utf-8")
    with pytest.raises(DataFileError) as info:
        load_reasons(path)
    message = str(info.value)
    assert "duplicate code '207'" in message
    assert "target 'agency'" in message


def test_data_file_error_is_an_evaluator_error() -> None:
    assert issubclass(DataFileError, EvaluatorError)
    assert issubclass(DataFileError, ValueError)


def test_non_utf8_file_is_a_data_file_error(tmp_path: Path) -> None:
    path = tmp_path / "reasons.toml"
    path.write_bytes(VALID.encode("gb18030"))
    with pytest.raises(DataFileError):
        load_reasons(path)


def test_a_reason_file_saved_with_a_bom_loads(tmp_path: Path) -> None:
    from evaluator.rules.reasons import default_reasons_path

    shipped = default_reasons_path().read_text(encoding="utf-8")
    bom = tmp_path / "reasons.toml"
    bom.write_bytes(b"\xef\xbb\xbf" + shipped.encode("utf-8"))
    assert load_reasons(bom) == load_reasons(default_reasons_path())
