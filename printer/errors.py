"""The printer's exceptions, under the product's one root (:class:`EvaluatorError`)."""

from __future__ import annotations

from evaluator.rules.errors import EvaluatorError


class PrinterError(EvaluatorError):
    """Root of every error the receipt printer adapter raises on purpose."""


class PrinterConfigError(PrinterError, ValueError):
    """A printer, profile or spooler setting is invalid; ``problems`` lists every one found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


class ReceiptError(PrinterError, ValueError):
    """A receipt cannot be built: a field that cannot be printed, a URL too long for the QR."""


class PrinterOffline(PrinterError, OSError):
    """The printer cannot be reached, or stopped taking data within its timeout."""


class DecodeError(PrinterError, ValueError):
    """A byte stream holds a command the ESC/POS decoder does not know (``offset`` says where)."""

    def __init__(self, offset: int, message: str) -> None:
        super().__init__(f"at byte {offset}: {message}")
        self.offset = offset
