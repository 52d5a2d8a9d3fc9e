"""Server URLs: normalise what users type, add tokens, and redact them again.

Example:
    >>> ws_url("http://localhost:8000", "deepseek-chat-v3.1", token="s3cret")
    'ws://localhost:8000/ws/agents/deepseek-chat-v3.1?token=s3cret'
    >>> redact('ws://h:1/ws/agents/a?token=s3cret')
    'ws://h:1/ws/agents/a?token=***'
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlencode, urlsplit, urlunsplit

__all__ = ["split_agent_url", "ws_url", "http_base", "redact", "redact_text", "redact_secrets", "RedactingLogger"]

_AGENT_PATH = re.compile(r"^(?P<prefix>.*?)/ws/agents/(?P<agent>[^/]+)/?$")
_SCHEMES = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}


def _parts(url: str):
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"url must be a non-empty string like 'ws://localhost:8000', got {url!r}")
    url = url.strip()
    if "://" not in url:
        url = "ws://" + url  # "localhost:8000" is what people type
    parts = urlsplit(url)
    scheme = _SCHEMES.get(parts.scheme.lower())
    if scheme is None:
        raise ValueError(
            f"unsupported URL scheme {parts.scheme!r} in {redact(url)!r}: use ws://, wss://, http:// or https://"
        )
    if not parts.hostname:
        raise ValueError(f"URL {redact(url)!r} has no host")
    return scheme, parts


def split_agent_url(url: str) -> tuple[str, str | None]:
    """Split a full ``.../ws/agents/{id}`` URL into (base, agent id); else (url, None)."""
    scheme, parts = _parts(url)
    m = _AGENT_PATH.match(parts.path)
    if not m:
        return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), parts.query, "")), None
    base = urlunsplit((scheme, parts.netloc, m.group("prefix"), parts.query, ""))
    return base, unquote(m.group("agent"))


def ws_url(base: str, agent_id: str, token: str | None = None) -> str:
    """The WebSocket URL of one agent under ``base`` (ws/wss/http/https, any path prefix)."""
    scheme, parts = _parts(base)
    m = _AGENT_PATH.match(parts.path)
    prefix = m.group("prefix") if m else parts.path.rstrip("/")
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "token"]
    if token is not None:
        query.append(("token", token))
    path = f"{prefix}/ws/agents/{quote(agent_id, safe='')}"
    return urlunsplit((scheme, parts.netloc, path, urlencode(query), ""))


def http_base(url: str) -> str:
    """The REST base (http/https, no agent path, no query) of a ws or http URL."""
    scheme, parts = _parts(url)
    m = _AGENT_PATH.match(parts.path)
    prefix = m.group("prefix") if m else parts.path.rstrip("/")
    return urlunsplit(("https" if scheme == "wss" else "http", parts.netloc, prefix, "", ""))


_TOKEN_RE = re.compile(r"(token=)[^&#\s'\"]*", re.IGNORECASE)
_BEARER_RE = re.compile(r"(bearer\s+)\S+", re.IGNORECASE)


def redact(url: str) -> str:
    """The URL with any ``token=`` value replaced by ``***``."""
    return _TOKEN_RE.sub(r"\1***", url)


def redact_text(text: str, token: str | None) -> str:
    """Any text (exception messages, log lines) without the token in it."""
    text = _BEARER_RE.sub(r"\1***", _TOKEN_RE.sub(r"\1***", str(text)))
    if token:
        for form in (token, quote(token, safe=""), quote_plus(token, safe="")):
            text = text.replace(form, "***")
    return text


# A signed exchange request in an error text: everything after "?" up to the
# end of the URL (quote, space); wallet and signer addresses, signatures.
_QUERY_RE = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s?'\"<>]*)\?[^\s'\"<>]*", re.IGNORECASE)
_HEX_RE = re.compile(r"\b0x[0-9a-f]{8,}\b|\b[0-9a-f]{32,}\b", re.IGNORECASE)


def redact_secrets(text: str) -> str:
    """Free text from a server (ROMA-01's ``error`` frames) safe to show and store.

    URL query strings become ``?***`` (the current backend's exchange errors quote
    signed request URLs with the wallet, signer and signature in them) and
    wallet-like hex (``0x`` + 8 or more hex digits, or 32 or more bare hex digits)
    becomes ``0x***``.

    Example:
        >>> redact_secrets("503 for url 'https://x.io/v3/balance?user=0xc3c3c3c3c3&sig=1'")
        "503 for url 'https://x.io/v3/balance?***'"
    """
    return _HEX_RE.sub("0x***", _QUERY_RE.sub(r"\1?***", str(text)))


class RedactingLogger(logging.LoggerAdapter):
    """A logger that writes every record with tokens redacted (see :func:`redact_text`).

    Given to ``websockets`` as its ``logger``: at DEBUG it logs request lines
    (``GET /ws/agents/a?token=...``) and headers (``Authorization: Bearer ...``).
    The message is formatted here, and an exception's traceback is folded into the
    text, so neither the arguments nor the traceback can carry the token past it.

    Example:
        >>> import logging
        >>> log = RedactingLogger(logging.getLogger("demo"), token="s3cret")
        >>> log.isEnabledFor(logging.CRITICAL)
        True
    """

    def __init__(self, logger: logging.Logger | logging.LoggerAdapter, token: str | None = None):
        super().__init__(logger, {})
        self.token = token

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        try:
            text = str(msg) % args if args else str(msg)
        except Exception:  # a wrong format string must not lose the record
            text = f"{msg} {args!r}"
        exc_info = kwargs.pop("exc_info", None)
        if exc_info:
            if isinstance(exc_info, BaseException):
                exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
            elif not isinstance(exc_info, tuple):
                exc_info = sys.exc_info()
            if exc_info[0] is not None:
                text += "\n" + "".join(traceback.format_exception(*exc_info)).rstrip()
        self.logger.log(level, "%s", redact_text(text, self.token), **kwargs)
