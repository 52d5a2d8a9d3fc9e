"""Reading recordings line by line: one reader for :func:`roma_notebook.load` and
:mod:`roma_notebook.sim.replay`, so a damaged file means the same to both.

:class:`RecordingLines` turns a (possibly gzip, multi-member, truncated) file into
complete text lines, a block at a time; :func:`read_line` says what one line holds
(a frame, the header, a connection event, or why it is unusable);
:func:`read_header` checks a header. No pandas: the simulator's replay imports this.
The format is written by :class:`roma_notebook.store.recording.Recorder`.
"""

from __future__ import annotations

import base64
import binascii
import json
import queue
import threading
import zlib
from pathlib import Path
from typing import Any, Callable, Iterator

from .recording import RECORDING_FORMAT, RECORDING_VERSION, safe_url

__all__ = ["RecordingLines", "read_line", "text_lines", "binary_frame", "last_line", "read_header", "NotARecording"]

# bytes read per step: big enough to amortise, small enough that a progress bar
# moves several times a second (a gzip chunk decompresses to ~15x its size)
_CHUNK = 1 << 18
_NS_MIN, _NS_MAX = -(2**63), 2**63 - 1  # receive times the tables can store
# chunks a background reader may hold decompressed ahead of its consumer (memory bound)
_AHEAD = 2


class NotARecording(ValueError):
    """The first line is a JSON object that is neither a recording header nor a frame."""


class _Blocks:
    """Decompressed bytes of a (possibly gzip, multi-member, truncated) file, in chunks.

    Never raises for damaged data: after iteration ``problem`` says what was wrong
    (truncated gzip, corrupt data), or is None. With ``background``, a thread
    reads and decompresses ahead (zlib releases the GIL, so this overlaps the
    caller's parsing on a second core), at most ``_AHEAD`` chunks ahead;
    :meth:`close` stops and joins it (iteration ending does too).
    """

    def __init__(self, path: Path, progress: Callable[[int], None], background: bool = False):
        self.path = path
        self.progress = progress
        self.background = background
        self.problem: str | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._queue: queue.Queue = queue.Queue(_AHEAD)

    def __iter__(self) -> Iterator[bytes]:
        f = open(self.path, "rb")
        if not self.background:
            with f:
                for n, data in self._chunks(f):
                    self.progress(n)
                    yield data
            return
        self._thread = threading.Thread(target=self._produce, args=(f,), name="roma-gunzip", daemon=True)
        self._thread.start()
        try:
            get = self._queue.get
            while True:
                item = get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                n, data = item
                self.progress(n)
                yield data
        finally:
            self.close()

    def _produce(self, f: Any) -> None:
        put = self._queue.put
        stop = self._stop
        try:
            with f:
                for item in self._chunks(f):
                    put(item)
                    if stop.is_set():
                        return
            put(None)
        except BaseException as exc:  # an unreadable file: raised by the caller's thread
            put(exc)

    def close(self) -> None:
        """Stop the reading thread, if any, and wait for it."""
        t = self._thread
        if t is None:
            return
        self._stop.set()
        while t.is_alive():
            try:  # make room for a put() the thread may be blocked in
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            t.join(0.05)
        self._thread = None

    def _chunks(self, f: Any) -> Iterator[tuple[int, bytes]]:
        """(file bytes read, decompressed bytes) per step."""
        first = f.read(_CHUNK)
        if first[:2] != b"\x1f\x8b":
            data = first
            while data:
                yield len(data), data
                data = f.read(_CHUNK)
            return
        # Our own streaming gunzip: gzip.GzipFile raises at a missing trailer
        # and can lose the data decoded in that last read.
        d = zlib.decompressobj(31)
        data = first
        consumed = 0
        while data:
            saved = d.copy()
            try:
                out, d = _gunzip_step(d, data)
            except zlib.error as exc:
                # zlib drops a failing call's output: redo the chunk in small
                # steps to keep what decodes before the damage.
                d, out = saved, []
                for i in range(0, len(data), 512):
                    try:
                        more, d = _gunzip_step(d, data[i : i + 512])
                    except zlib.error:
                        break
                    out += more
                self.problem = f"corrupt gzip data after byte {consumed} ({exc})"
                yield len(data), b"".join(out)
                return
            consumed += len(data)
            yield len(data), b"".join(out)
            data = f.read(_CHUNK)
        tail = d.flush()
        if not d.eof:
            self.problem = "gzip stream ends early (the recording was not closed)"
        if tail:
            yield 0, tail


class RecordingLines:
    """Complete text lines of a recording, one list per decompressed block.

    The loader and :mod:`roma_notebook.sim.replay` both read recordings through this
    (and :func:`read_line`), so a damaged file means the same to both. Lines come without their newline;
    after iteration ``tail`` holds the bytes after the last newline (a torn or
    unterminated last line, possibly empty) and ``problem`` any gzip damage.
    ``background`` decompresses in a thread (see :class:`_Blocks`); a caller that
    may stop before the end calls :meth:`close`.
    """

    def __init__(self, path: Path, progress: Callable[[int], None] = lambda n: None, *,
                 background: bool = False):
        self.blocks = _Blocks(path, progress, background)
        self.tail = b""

    def close(self) -> None:
        """Stop a ``background`` reader early (after an error): no thread outlives it."""
        self.blocks.close()

    @property
    def problem(self) -> str | None:
        return self.blocks.problem

    def __iter__(self) -> Iterator[list[str]]:
        for raw in self.raw_blocks():
            yield text_lines(raw)

    def raw_blocks(self) -> Iterator[bytes]:
        """The complete lines of each decompressed block as one ``bytes``: the lines
        joined by newline bytes, none after the last.

        Complete lines only, so no UTF-8 sequence is split (a newline byte is never
        inside one): the line the previous block left unfinished is completed here.
        """
        carry = b""
        for block in self.blocks:
            cut = block.rfind(b"\n") + 1
            if not cut:
                carry += block
                continue
            with memoryview(block) as view:
                raw = b"".join((carry, view[: cut - 1]))  # one copy, not two
            carry = block[cut:]
            yield raw
        self.tail = carry


def _gunzip_step(d: Any, data: bytes) -> tuple[list[bytes], Any]:
    """Feed ``data`` to a gzip decompressor, starting new ones at member boundaries."""
    out = [d.decompress(data)]
    while d.eof and d.unused_data:
        rest = d.unused_data
        if not rest.strip(b"\x00"):  # zero padding after the last member
            break
        d = zlib.decompressobj(31)
        out.append(d.decompress(rest))
    return out, d


def read_line(line: str, *, first: bool = False) -> tuple:
    """What one recording line holds.

    Returns one of:

    - ``("frame", t, agent, frame)``: ``frame`` is the text of a text frame, the
      bytes of a binary one (base64-decoded), or whatever JSON value the line holds;
    - ``("header", record)``: check it with :func:`read_header`;
    - ``("connection", t, agent, event, detail)``;
    - ``("bad", why, is_object)``: unusable; ``is_object`` says it was a JSON object.

    Raises:
        NotARecording: ``first`` and the line is an object with neither ``format``
            nor ``frame`` (some other file).
    """
    try:
        rec = json.loads(line)
    except ValueError as exc:
        return ("bad", f"not JSON ({exc})", False)
    if type(rec) is not dict:
        return ("bad", "not a JSON object", False)
    if first and "format" not in rec and "frame" not in rec:
        raise NotARecording("its first line is not a recording header")
    if "frame" in rec:
        t = rec.get("t")
        agent = rec.get("agent")
        frame = rec["frame"]
        if type(t) is not int or type(agent) is not str:
            return ("bad", "frame line without an int 't' and a string 'agent'", True)
        if not _NS_MIN <= t <= _NS_MAX:  # the tables store int64 ns
            return ("bad", f"frame line's 't' {t} is outside the int64 nanosecond range", True)
        if rec.get("binary"):
            frame, why = binary_frame(frame)
            if why is not None:
                return ("bad", why, True)
        return ("frame", t, agent, frame)
    if "format" in rec:
        return ("header", rec)
    if "connection" in rec:
        t = rec.get("t")
        agent = rec.get("agent")
        if type(t) is not int or type(agent) is not str:
            return ("bad", "connection line without an int 't' and a string 'agent'", True)
        return ("connection", t, agent, str(rec["connection"]), str(rec.get("detail") or ""))
    return ("bad", "neither a header, a frame nor a connection event", True)


def text_lines(raw: bytes) -> list[str]:
    """The lines of a :meth:`RecordingLines.raw_blocks` block (or a slice of one cut at a
    newline) as text, undecodable bytes replaced. One decode per block, not per line:
    json on str is ~3x cheaper than on bytes."""
    return str(raw, "utf-8", "replace").split("\n")


def binary_frame(text: Any) -> tuple[bytes | None, str | None]:
    """A binary frame line's ``frame`` (base64) as ``(bytes, None)``, or ``(None, why)``."""
    try:
        return base64.b64decode(text, validate=True), None
    except (binascii.Error, TypeError, ValueError) as exc:
        return None, f"binary frame is not base64 ({exc})"


def last_line(tail: bytes) -> tuple[str, bool]:
    """The text after a file's last newline and whether it is a whole line (a last
    line written without its newline) rather than a torn one."""
    text = tail.decode("utf-8", "replace")
    if not text.strip():
        return text, False
    try:
        return text, json.loads(text) is not None
    except ValueError:
        return text, False


def read_header(ctx: Any, rec: dict, path: Path) -> None:
    """Check a header line's format and version; note its URL and agent ids on ``ctx``
    (``url``, ``declared``).

    Raises:
        ValueError: another format, or a version newer than this roma_notebook reads.
    """
    if rec.get("format") != RECORDING_FORMAT:
        raise ValueError(f"{path} is not a roma_notebook recording (format {rec.get('format')!r})")
    version = rec.get("version")
    if not isinstance(version, int) or version > RECORDING_VERSION:
        raise ValueError(
            f"{path} is a version {version!r} recording; this roma_notebook reads version "
            f"{RECORDING_VERSION} or older: upgrade roma_notebook"
        )
    if ctx.url is None and isinstance(rec.get("url"), str):
        ctx.url = safe_url(rec["url"])  # even a hand-edited header never shows a token
    ids = rec.get("agent_ids")
    if isinstance(ids, list):
        for a in ids:
            if isinstance(a, str) and a not in ctx.declared:
                ctx.declared.append(a)
