"""Every string the pad shows to a citizen or an operator, as named constants.

Templates use ``str.format`` fields; tests import these names instead of repeating the text.
"""

from __future__ import annotations

#: Window title (visible only when run in a desktop window).
WINDOW_TITLE = "窗口评价器"

# --- presenting -------------------------------------------------------------------------------
PRESENT_TITLE = "请您对本次服务进行评价"
LABEL_MATTER = "事项名称"
LABEL_SERIAL = "业务流水号"
LABEL_CLERK = "窗口人员"
LABEL_CLERK_NAME = "姓名"
LABEL_CLERK_ID = "工号"
#: "label：value" (full-width colon).
LABELLED_FMT = "{label}：{value}"
#: Batch of cases rated together (art. 24).
BATCH_COUNT_FMT = "共{count}件"
#: Shown under the first few cases of a batch when more are hidden.
BATCH_MORE_FMT = "……等{count}件"
#: One case line of a batch: matter name and serial.
BATCH_LINE_FMT = "{matter}　{serial}"
#: 一件事 theme (art. 31).
THEME_FMT = "一件事：{theme}"
#: The button that rates a theme's items one by one (art. 31).
BUTTON_EXPAND_THEME = "分项评价"
#: While a theme is rated item by item: which item this rating is for.
THEME_ITEM_FMT = "第{index}项/共{count}项：{matter}"
#: Small countdown in a corner.
COUNTDOWN_FMT = "{seconds}秒"

# --- reasons (差评, art. 11/23/27/29) ----------------------------------------------------------
REASONS_TITLE_FMT = "请选择{level}的原因（可多选）"
GROUP_CLERK = "窗口人员"
GROUP_MATTER = "办理事项"
GROUP_OTHER = "其他"
GROUP_AGENCIES = "联办部门"
#: 常用意见: phrases tapped into the 其他 text (a touch-only pad has no keyboard).
GROUP_PHRASES = "常用意见"
COMMENT_PLACEHOLDER = "点选下方常用意见，或用键盘输入"
COMMENT_COUNTER_FMT = "{count}/{limit}"
SUBMIT_HINT = "请选择原因或填写意见"
BUTTON_BACK = "返回"
BUTTON_SUBMIT = "提交"

# --- other screens ----------------------------------------------------------------------------
THANKS = "谢谢您的评价！"
IDLE_WELCOME = "欢迎办理"
SIGNED_OUT_TITLE = "暂停服务"
SIGNED_OUT_SUBTITLE = "本窗口暂无工作人员"
PAUSED_TITLE = "暂停服务，请稍候"
NOTICE_TITLE = "提示"
#: Caption under the window's static QR on the idle screen (art. 17(3)).
IDLE_QR_CAPTION = "扫码评价本窗口服务"
#: The screensaver's small line under the window label: any touch wakes the pad.
SCREENSAVER_HINT = "轻触屏幕唤醒"
#: Shown on the rating screen when the rating could not be stored (nothing was recorded).
STORAGE_FAILED = "评价未能保存，请再按一次或告知工作人员"
#: Shown on the reason screen when the 其他 text holds an ID or mobile number (not stored).
COMMENT_IDENTITY = "请不要填写身份证号或手机号，删除后再提交"
#: Shown on every other screen while the rating store refuses writes (disk full, read-only…).
STORAGE_FAULT = "设备存储故障，暂时无法评价，请告知工作人员"

# --- operator-facing (font errors) ------------------------------------------------------------
FONT_CONFIGURED_MISSING_FMT = (
    "configured CJK font {path} does not exist or is not a file; fix the font path in the "
    "configuration or install fonts-wqy-microhei"
)
FONT_UNREADABLE_FMT = "CJK font {path} cannot be loaded: {error}"
FONT_NOT_FOUND_FMT = (
    "no CJK font found (searched: {paths}); install fonts-wqy-microhei "
    "(sudo apt install fonts-wqy-microhei) or configure a font path"
)
FONT_NO_HANZI_FMT = (
    "font {path} has no Chinese glyphs (hanzi would show as boxes); use a CJK font such as "
    "fonts-wqy-microhei or Noto Sans CJK SC"
)

# --- self-service terminal (自助终端, art. 18/23) -------------------------------------------
#: Shown where the clerk panel is on a window's rating screen.
LABEL_TERMINAL = "终端机编号"
