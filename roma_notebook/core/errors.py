"""Exception hierarchy of roma_notebook.

Every error the library raises on purpose derives from :class:`RomaError`, so a
notebook can catch them all with one ``except``.
"""

from __future__ import annotations

__all__ = [
    "RomaError",
    "ProtocolError",
    "ConnectionFailed",
    "AgentNotFound",
    "AuthenticationError",
]


class RomaError(Exception):
    """Base class of every roma_notebook error."""


class ProtocolError(RomaError, ValueError):
    """A frame that cannot be used.

    Attributes:
        kind: short machine-readable class of the problem (``not_json``,
            ``not_object``, ``unknown_type``, ``bad_field``, ``binary``, ``empty``).
        detail: human-readable text naming the offending field.
    """

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


class ConnectionFailed(RomaError, ConnectionError):
    """The server could not be reached or the connection failed for good."""


class AgentNotFound(ConnectionFailed):
    """The server does not know this agent id (close code 1008 or HTTP 404)."""


class AuthenticationError(ConnectionFailed):
    """The server refused the token (HTTP 401/403)."""
