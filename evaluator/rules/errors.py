"""One exception root for the whole product, mixed with the builtin each error resembles."""

from __future__ import annotations


class EvaluatorError(Exception):
    """Root of every error the evaluator raises on purpose."""


class ConfigError(EvaluatorError, ValueError):
    """A configuration file is unreadable or invalid; carries every problem found."""


class DataFileError(EvaluatorError, ValueError):
    """A shipped data file (reason list, …) is malformed."""


class RequestError(EvaluatorError, ValueError):
    """An evaluation request or counter-link message was refused.

    ``code`` is the stable machine-readable reason sent back on the counter link.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class SubmitError(EvaluatorError, ValueError):
    """A rating cannot be submitted as chosen (e.g. a 差评 without a reason)."""


class IdentityInComment(SubmitError):
    """The 其他 text holds a resident ID or mobile number; it is not stored (art. 4)."""


class StoreError(EvaluatorError, OSError):
    """The rating store could not commit or read a record."""


class FontError(EvaluatorError, FileNotFoundError):
    """No CJK font could be loaded for the screen."""
