"""A logging filter that keeps secrets out of logs: passwords, tokens, keys, URL passwords."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Final

MASK: Final = "***"

_PATTERNS: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    # A JWT anywhere (three base64url parts, the first a JSON header).
    (re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), MASK),
    # Authorization headers.
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]+"), rf"\1\2{MASK}"),
    # Password hashes (argon2, Mosquitto PBKDF2).
    (re.compile(r"\$argon2(?:id|i|d)\$[^\s\"']+"), MASK),
    (re.compile(r"\$[67]\$\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+"), MASK),
    # The password of a URL: scheme://user:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s/:@]*:)([^\s@/]+)(@)"), rf"\1{MASK}\3"),
    # key=value, key: value, "key": "value" for secret-looking keys.
    (
        re.compile(
            r"(?i)([\"']?\b[a-z0-9_-]*(?:password|passwd|pwd|secret|token|api[_-]?key|"
            r"authorization|credential)[a-z0-9_-]*[\"']?\s*[:=]\s*)"
            r"(?:\"[^\"]*\"|'[^']*'|[^\s,;&}\]]+)"
        ),
        rf"\1{MASK}",
    ),
)


def redact(text: str) -> str:
    """``text`` with every secret-looking part replaced by ``***``."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


#: Attributes every LogRecord has; anything else came in through ``extra=``.
_STANDARD: Final = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


class RedactingFilter(logging.Filter):
    """Redacts the message, the ``extra`` fields and the traceback of every record it sees.
    Install it on handlers (`install`), so records from every logger pass through it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed call; let the handler report it as usual
            return True
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        for key, value in list(vars(record).items()):
            if key in _STANDARD:
                continue
            if isinstance(value, str):
                setattr(record, key, redact(value))
            elif isinstance(value, (dict, list, tuple)):
                setattr(record, key, redact(repr(value)))
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install(
    logger_names: Iterable[str] = ("", "uvicorn", "uvicorn.error", "uvicorn.access"),
) -> int:
    """Add one `RedactingFilter` to every handler of the named loggers; returns how many
    handlers got one. Call again after something configures more handlers."""
    added = 0
    for name in logger_names:
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())
                added += 1
    return added
