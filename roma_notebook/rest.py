"""Minimal REST client for the ROMA-01 API (stdlib ``urllib``: a few GETs of JSON
do not justify a dependency).

Example:
    >>> import roma_notebook as rn
    >>> with rn.Simulator(seed=1) as sim:              # doctest: +SKIP
    ...     rn.agents(sim.http_url)["id"].tolist()
    ['deepseek-chat-v3.1', 'qwen3-max']
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode

import pandas as pd

from .errors import AgentNotFound, AuthenticationError, ConnectionFailed
from .urls import http_base, redact_text

__all__ = ["get_json", "agents"]


def get_json(
    base: str, path: str, params: dict | None = None, *, token: str | None = None, timeout: float = 10.0
) -> Any:
    """GET ``base + path`` and decode its JSON body.

    Raises:
        AgentNotFound: HTTP 404 whose detail names an agent.
        AuthenticationError: HTTP 401/403.
        ConnectionFailed: server unreachable, other HTTP errors, or a body that is not JSON.
    """
    q = dict(params or {})
    if token is not None:
        q["token"] = token
    url = http_base(base) + path + (("?" + urlencode(q)) if q else "")
    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
    except urllib.error.HTTPError as exc:
        detail = _detail(exc)
        if exc.code in (401, 403):
            raise AuthenticationError(
                f"{path}: HTTP {exc.code} {detail}; check the token".strip()
            ) from None
        if exc.code == 404 and "agent" in detail.lower():
            raise AgentNotFound(f"{detail}; check the agent id (rn.agents(url) lists them)") from None
        raise ConnectionFailed(redact_text(f"GET {path}: HTTP {exc.code} {detail}", token)) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ConnectionFailed(
            redact_text(
                f"cannot reach {http_base(base)} ({reason}); is the ROMA-01 backend or "
                "`roma-notebook sim` running, and is the host/port right?",
                token,
            )
        ) from None
    try:
        return json.loads(body)
    except ValueError:
        raise ConnectionFailed(f"GET {path}: response is not JSON ({body[:80]!r})") from None


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read()).get("detail", ""))
    except Exception:  # body absent or not JSON: the status says enough
        return ""


def agents(url: str = "http://localhost:8000", *, token: str | None = None) -> pd.DataFrame:
    """List the server's agents (``GET /api/agents``) as a DataFrame.

    Args:
        url: server base, ``http(s)://`` or ``ws(s)://``.
        token: optional API token.

    Returns:
        One row per agent with ``id``, ``name``, ``is_running``, ``cycle_count``,
        ``runtime_minutes`` and whatever else the server reports.
    """
    data = get_json(url, "/api/agents", token=token)
    if isinstance(data, dict) and "agents" in data:  # tolerate a wrapped list
        data = data["agents"]
    if not isinstance(data, list):
        raise ConnectionFailed(f"/api/agents returned {type(data).__name__}, expected a list")
    df = pd.DataFrame(data)
    if "id" not in df.columns:
        df["id"] = pd.Series(dtype="string")
    return df.convert_dtypes(dtype_backend="numpy_nullable")
