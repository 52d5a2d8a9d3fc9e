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

from ..core.errors import AgentNotFound, AuthenticationError, ConnectionFailed
from ..core.urls import http_base, redact_text

__all__ = ["get_json", "agents", "insights", "agent_analytics", "EndpointNotFound"]


class EndpointNotFound(ConnectionFailed):
    """HTTP 404 for a path (not an agent): this backend version lacks the endpoint."""


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
        if exc.code == 404:
            raise EndpointNotFound(redact_text(f"GET {path}: HTTP 404 {detail}", token)) from None
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


# ---------------------------------------------------------------- newer endpoints (current backend)


def _newer(base: str, path: str, params: dict | None, token: str | None, what: str) -> Any:
    try:
        return get_json(base, path, params, token=token)
    except EndpointNotFound:
        raise EndpointNotFound(
            f"{http_base(base)} has no {path}: this ROMA-01 backend version lacks {what} "
            "(they came with the current backend; see docs/roma01.md)"
        ) from None


def _agent_ids(url: str, agent_id: str | None, token: str | None) -> list[str]:
    if agent_id is not None:
        return [agent_id]
    ids = agents(url, token=token)["id"].dropna().tolist()
    return [str(a) for a in ids]


def insights(url: str = "http://localhost:8000", agent_id: str | None = None, *, token: str | None = None,
             limit: int = 100) -> pd.DataFrame:
    """ROMA-01's own trade-history insights (current backend) as a DataFrame.

    ``GET /api/agents/{agent_id}/insights``, or ``/api/insights/global`` (every
    agent's) when ``agent_id`` is None. The backend returns only active insights
    with confidence >= 0.7. Columns and dtypes are those of the ``insights`` table
    (``rn.load`` of a SQLite store gives the same, with inactive ones too):
    category, title, summary, detailed_findings, confidence (0..1),
    recommendations and supporting_trade_ids (lists), is_active, created_at,
    deprecated_at; zone-less times are read as UTC.

    Raises:
        EndpointNotFound: the backend is an older version without insights.
        AgentNotFound, ConnectionFailed, AuthenticationError: as :func:`get_json`.

    Example:
        >>> with rn.Simulator(dialect="roma-current", speed=6000) as sim:   # doctest: +SKIP
        ...     rn.insights(sim.http_url)[["agent_id", "category", "title"]]
    """
    from urllib.parse import quote

    from ..core import protocol as P
    from ..core.tables import Tables

    if agent_id is None:
        path = "/api/insights/global"
    else:
        path = f"/api/agents/{quote(agent_id, safe='')}/insights"
    body = _newer(url, path, {"limit": limit, "min_confidence": 0.0}, token, "insights")
    items = body.get("data", {}).get("insights") if isinstance(body, dict) and isinstance(body.get("data"), dict) else None
    if not isinstance(items, list):
        raise ConnectionFailed(f"{path} returned no data.insights list")
    tables = Tables()
    for i, d in enumerate(items):
        try:
            ev = P.insight_from_dict(d, f"insights[{i}]")
        except P.ProtocolError as exc:
            tables.add_error(agent_id, exc.kind, exc.detail, json.dumps(d)[:2000], source="rest")
            continue
        ns = ev.created_at if ev.created_at is not None else 0
        owner = ev.agent_id or agent_id
        if owner is None:  # a global insight that names no agent cannot be anyone's row
            tables.add_error(None, "bad_field", f"insights[{i}].agent_id is missing",
                             json.dumps(d)[:2000], source="rest")
            continue
        tables.append(owner, ev, ns, source="rest")
    df = tables.frame("insights")
    return df.sort_values("created_at", ascending=False, kind="stable").reset_index(drop=True)


def agent_analytics(url: str = "http://localhost:8000", agent_id: str | None = None, *,
                    token: str | None = None) -> pd.DataFrame:
    """The agents' ``/api/agents/{id}/analytics`` (current backend), one row per agent.

    Columns as the backend names them (trade counts as Int64, the rest float64;
    P&L figures inherit ROMA-01's P&L x leverage, confidences are percent) plus
    ``error``: an agent whose analytics fail (HTTP 500 when one of its last 100
    decision logs has no decisions) gets a row with the server's message there.

    Raises:
        EndpointNotFound: the backend is an older version without analytics.

    Example:
        >>> rn.agent_analytics("http://localhost:8000")   # doctest: +SKIP
    """
    from urllib.parse import quote

    rows: list[dict[str, Any]] = []
    for a in _agent_ids(url, agent_id, token):
        path = f"/api/agents/{quote(a, safe='')}/analytics"
        try:
            body = _newer(url, path, None, token, "analytics")
        except (EndpointNotFound, AgentNotFound, AuthenticationError):
            raise
        except ConnectionFailed as exc:
            rows.append({"agent_id": a, "error": str(exc)})
            continue
        if not isinstance(body, dict):
            rows.append({"agent_id": a, "error": f"{path} returned {type(body).__name__}, not an object"})
            continue
        rows.append({"agent_id": a, **{k: v for k, v in body.items() if k != "agent_id"}, "error": None})
    df = pd.DataFrame(rows)
    if "agent_id" not in df.columns:
        df["agent_id"] = pd.Series(dtype="string")
    out = {}
    for c in df.columns:
        if c == "agent_id":
            continue
        col = df[c]
        if c in ("total_trades", "winning_trades", "losing_trades"):
            out[c] = pd.to_numeric(col, errors="coerce").astype("Int64")
        elif c == "error":
            out[c] = col.astype("string")
        else:
            out[c] = pd.to_numeric(col, errors="coerce").astype("float64")
    index = pd.Index(df["agent_id"].astype("string"), name="agent_id")
    return pd.DataFrame({c: v.array for c, v in out.items()}, index=index)
