"""Every text printed on a receipt.  Tests import these names instead of repeating the text."""

from __future__ import annotations

#: The receipt's title (办件回执, art. 17(2)).
TITLE = "办件回执"
#: The prompt above the QR code (the wording of issue 7).
PROMPT = "请扫码对本次服务进行评价"
WINDOW_FMT = "窗口：{window}"
MATTER_FMT = "事项名称：{matter}"
SERIAL_FMT = "业务流水号：{serial}"
#: A batch (art. 24): the label with the count, then one serial per line.
SERIALS_FMT = "业务流水号（共{count}件）："
CLERK_FMT = "办理人员：{name}（工号：{id}）"
TIME_FMT = "办理时间：{time}"
#: ``issued_at`` as printed.
TIME_FORMAT = "%Y-%m-%d %H:%M"
#: Above the short code typed when a scan fails.
CODE_LABEL = "扫码失败时请输入评价码："
#: The window's static QR sticker (art. 17(3)): its title and the caption under the QR (the idle
#: screen's caption).
STICKER_TITLE = "政务服务好差评"
STICKER_CAPTION = "扫码评价本窗口服务"
