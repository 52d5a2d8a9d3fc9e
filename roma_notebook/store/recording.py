"""Record every received WebSocket frame to a JSON Lines file (gzip when ``.gz``).

A recording keeps the *raw* frames, not parsed rows, so that loading it
(:func:`roma_notebook.load`) replays them through the same ``protocol`` and
``tables`` code a live stream uses and gives identical DataFrames, bad frames and
all. The format, one JSON object per line:

- a header, first in the file and again after every append::

    {"format": "roma-notebook-recording", "version": 1, "library_version": "0.1.0",
     "url": "ws://host:8000", "agent_ids": ["deepseek-chat-v3.1"],
     "created": "2025-11-02T10:30:00.123456Z"}

- one line per text frame: ``{"t": <receive time, int ns UTC>, "agent": <id>,
  "frame": <the frame text>}``;
- one line per binary frame: ``{"t": ..., "agent": ..., "frame": <base64>,
  "binary": true}``;
- one line per connection event (optional, :meth:`Recorder.write_connection`):
  ``{"t": ..., "agent": ..., "connection": "connected", "detail": ""}``.

The URL in the header never carries a token: query, fragment and user info are
dropped before anything is written.

Example:
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "session.jsonl.gz")
    >>> with Recorder(path, url="ws://localhost:8000?token=s3cret") as rec:
    ...     rec.write("qwen3-max", 1762079400000000000, '{"type": "pong"}')
    >>> rec.frames
    1
"""

from __future__ import annotations

import atexit
import base64
import gzip
import json
import os
import threading
import time
import weakref
import zlib
from datetime import datetime, timezone
from typing import Any, Iterable
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "Recorder",
    "RECORDING_FORMAT",
    "RECORDING_VERSION",
    "safe_url",
]

#: value of the header's ``format`` key
RECORDING_FORMAT = "roma-notebook-recording"
#: the newest recording version this library writes and reads
RECORDING_VERSION = 1

# Lines are collected in memory and handed to the file in blocks this big: one
# write (and, for gzip, one compress call) per block instead of per frame.
_BLOCK = 1 << 16
# A flush at most this often from write() itself; the stream owner's 1 s timer
# covers quiet streams.
_FLUSH_EVERY_NS = 1_000_000_000


def safe_url(url: Any) -> str | None:
    """The URL without query, fragment or user info, so no token is ever stored.

    Args:
        url: a WebSocket or HTTP URL, or None.

    Returns:
        ``scheme://host:port/path``, or None when ``url`` is None.

    Example:
        >>> safe_url("ws://me:pw@localhost:8000/ws/agents/a?token=s3cret#x")
        'ws://localhost:8000/ws/agents/a'
    """
    if url is None:
        return None
    text = str(url)
    try:
        parts = urlsplit(text)
    except ValueError:
        # Unparseable: keep only what precedes any query, which is where tokens go.
        return text.split("?", 1)[0].split("#", 1)[0]
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


# Recorders still open when the interpreter exits (a script or kernel that never
# stopped its stream) are closed then, so the file ends with its gzip trailer
# instead of reading as truncated.
_OPEN: "weakref.WeakSet[Recorder]" = weakref.WeakSet()


@atexit.register
def _close_open_recorders() -> None:
    for rec in list(_OPEN):
        try:
            rec.close()
        except Exception:  # noqa: BLE001 - exiting anyway; the file stays loadable
            pass


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _library_version() -> str:
    # Imported late: the package root imports this module's users, not the reverse.
    try:
        from .. import __version__
        return str(__version__)
    except Exception:  # pragma: no cover - partial installs
        return "unknown"


class Recorder:
    """Append received frames with their receive time to a JSON Lines recording.

    ``write`` is called from the background loop thread on every frame, so it
    only formats one line and appends it to an in-memory block; blocks go to the
    file when they reach 64 KiB, and everything is flushed (for gzip with a
    ``Z_SYNC_FLUSH``, so the bytes on disk decode) when a second has passed since
    the last flush, on :meth:`flush` and on :meth:`close`. Nothing is fsynced: a
    killed process leaves a readable file missing at most the last ~1 s.

    Appending to an existing recording is allowed: a new header line (and for
    gzip a new gzip member) starts the appended part, and the loader reads both.

    Args:
        path: file to write; a name ending in ``.gz`` is gzip-compressed.
        url: server URL for the header (token, query and user info are dropped).
        agent_ids: agent ids this recording is meant to hold, for the header.

    Attributes:
        path: the file path (str).
        frames: frames written so far.
        closed: True after :meth:`close`.

    Example:
        >>> import tempfile, os
        >>> rec = Recorder(os.path.join(tempfile.mkdtemp(), "s.jsonl"))
        >>> rec.write("a", 1762079400000000000, b"\\x00\\x01")  # binary: base64
        >>> rec.close()
    """

    def __init__(self, path: Any, *, url: str | None = None, agent_ids: Iterable[str] | None = None):
        try:
            self.path = os.fspath(path)
        except TypeError:
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}") from None
        if isinstance(self.path, bytes):
            self.path = os.fsdecode(self.path)
        if agent_ids is not None:
            if isinstance(agent_ids, str):
                agent_ids = [agent_ids]
            agent_ids = [str(a) for a in agent_ids]
        self.url = safe_url(url)
        self.agent_ids = agent_ids
        self.gzip = self.path.endswith(".gz")
        self.frames = 0
        self.closed = False
        self._lock = threading.Lock()  # write() on the loop thread, flush() from a timer
        self._block: list[bytes] = []
        self._block_size = 0
        self._agent_json: dict[str, str] = {}  # json.dumps(agent) cached: ids repeat
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, exist_ok=True)
        self._raw = open(self.path, "ab")
        try:
            if self.gzip:
                # Level 3: on JSON frames ~3x faster than the default 6 for files
                # ~20% bigger; this runs on the loop thread, next to ingest.
                self._out: Any = gzip.GzipFile(fileobj=self._raw, mode="ab", compresslevel=3, mtime=0)
            else:
                self._out = self._raw
            header = {
                "format": RECORDING_FORMAT,
                "version": RECORDING_VERSION,
                "library_version": _library_version(),
                "url": self.url,
                "agent_ids": self.agent_ids,
                "created": _now_iso(),
            }
            self._out.write(json.dumps(header).encode() + b"\n")
            self._flush_locked()
        except BaseException:
            self._raw.close()
            raise
        self._last_flush = time.monotonic_ns()
        _OPEN.add(self)

    # ------------------------------------------------------------ writing

    def write(self, agent_id: str, received_ns: int, frame: Any) -> None:
        """Append one received frame.

        Args:
            agent_id: the agent whose stream delivered the frame.
            received_ns: receive time, int nanoseconds since the epoch (UTC).
            frame: the frame as received: ``str`` for text frames, bytes-like for
                binary frames (stored base64). Anything else is stored as its
                ``str()`` so the loader still sees it (as a bad frame).

        Raises:
            ValueError: the recorder is closed.
        """
        aj = self._agent_json.get(agent_id)
        if aj is None:
            aj = self._agent_json[agent_id] = json.dumps(str(agent_id))
        if type(frame) is str:
            line = '{"t":%d,"agent":%s,"frame":%s}\n' % (received_ns, aj, json.dumps(frame))
        elif isinstance(frame, (bytes, bytearray, memoryview)):
            b64 = base64.b64encode(bytes(frame)).decode("ascii")
            line = '{"t":%d,"agent":%s,"frame":"%s","binary":true}\n' % (received_ns, aj, b64)
        else:
            line = '{"t":%d,"agent":%s,"frame":%s}\n' % (received_ns, aj, json.dumps(str(frame)))
        # surrogatepass: json.dumps escapes lone surrogates already, this is belt and braces
        data = line.encode("utf-8", "surrogatepass")
        with self._lock:
            if self.closed:
                raise ValueError(f"recording {self.path!r} is closed")
            self._block.append(data)
            self._block_size += len(data)
            self.frames += 1
            if self._block_size >= _BLOCK:
                self._drain_locked()
            now = time.monotonic_ns()
            if now - self._last_flush >= _FLUSH_EVERY_NS:
                self._flush_locked()
                self._last_flush = now

    def write_connection(self, agent_id: str, received_ns: int, event: str, detail: str = "") -> None:
        """Append one connection event (connected, disconnected, reconnecting, failed).

        The loader turns it into a ``connections`` row, so a loaded recording shows
        the same connection history as the live stream did.
        """
        rec = {"t": int(received_ns), "agent": str(agent_id), "connection": str(event), "detail": str(detail)}
        data = (json.dumps(rec) + "\n").encode("utf-8", "surrogatepass")
        with self._lock:
            if self.closed:
                raise ValueError(f"recording {self.path!r} is closed")
            self._block.append(data)
            self._block_size += len(data)

    def _drain_locked(self) -> None:
        if self._block:
            self._out.write(b"".join(self._block))
            self._block.clear()
            self._block_size = 0

    def _flush_locked(self) -> None:
        self._drain_locked()
        if self.gzip:
            # Z_SYNC_FLUSH ends the current deflate block on a byte boundary: all
            # data so far decodes even if the gzip trailer is never written.
            self._out.flush(zlib.Z_SYNC_FLUSH)
        self._raw.flush()

    def flush(self) -> None:
        """Make everything written so far decodable on disk (no fsync). No-op when closed."""
        with self._lock:
            if self.closed:
                return
            self._flush_locked()
            self._last_flush = time.monotonic_ns()

    def close(self) -> None:
        """Flush, write the gzip trailer and close the file. Idempotent."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            _OPEN.discard(self)
            try:
                self._drain_locked()
                if self.gzip:
                    self._out.close()  # writes the trailer; leaves the raw file open
            finally:
                self._raw.close()

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"Recorder({self.path!r}, frames={self.frames}, {state})"


# ---------------------------------------------------------------- CLI
