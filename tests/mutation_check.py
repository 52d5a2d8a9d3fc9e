"""Mutation self-check: plant known bugs one at a time; the fast tests must catch each.

A test suite can pass for the wrong reason (an assertion that cannot fail, a check
of the last column only, a condition that holds whatever the code does). This
script copies the package to a temporary directory, plants each bug of
:data:`MUTATIONS` by exact text replacement (the old text must occur exactly once,
so a mutation fails loudly when the code it targets drifts), and runs the chosen
fast tests against the copy in a fresh pytest process. A mutation the tests do not
catch fails the check.

Usage::

    python tests/mutation_check.py                 # all mutations, then a summary
    python tests/mutation_check.py --only jitter   # names containing "jitter"
    python tests/mutation_check.py --list
    python tests/mutation_check.py --tests-dir DIR # run another copy of tests/ (e.g. an old one)
    python tests/mutation_check.py --jobs 1        # one mutant at a time (default: two)

Adding a mutation: append a :class:`Mutation` with the file (relative to
``roma_notebook/``), the exact old and new text, and the tests (relative to the tests
directory, pytest node ids allowed) that must fail on it. Keep those tests fast: the
whole check runs in CI and must stay under two minutes.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Mutation", "MUTATIONS", "main"]

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "roma_notebook"


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str  # relative to roma_notebook/
    old: str
    new: str
    tests: tuple[str, ...]  # relative to the tests directory; node ids allowed
    what: str = ""


MUTATIONS: list[Mutation] = [
    Mutation(
        "decision de-duplication off",
        "core/tables.py",
        "            if key in self._seen_cycles:\n",
        "            if False:\n",
        ("test_tables.py::test_decision_dedupe_by_agent_and_cycle",),
        "a resent decision is stored twice",
    ),
    Mutation(
        "fill de-duplication off",
        "core/tables.py",
        "                    if key in self._seen_orders:\n",
        "                    if False:\n",
        ("test_tables.py::test_fill_dedupe_by_order_id",),
        "a resent trade_executed is stored twice",
    ),
    Mutation(
        "merged sources not de-duplicated",
        "core/tables.py",
        "            if all(r > seen.newest.get(a, _NA_INT) for a, r in first.items()):\n",
        "            if True:\n",
        ("test_dedup.py::test_a_recording_and_its_own_export_give_each_row_once",),
        "a recording merged with its own Parquet export keeps every row twice",
    ),
    Mutation(
        "drawdown peak wrong",
        "analysis/analytics.py",
        'peak = eq.groupby(acc["agent_id"], sort=False).cummax()',
        "peak = eq.cummax()",
        ("test_analytics.py::test_max_drawdown_on_known_equity", "test_analytics.py::test_two_agents_kept_separate"),
        "the running peak is taken over all agents together",
    ),
    Mutation(
        "decimation cache blind",
        "views/decimate.py",
        "            and self._check(y, A, ka)\n",
        "            and True\n",
        ("test_decimate.py::test_cache_notices_replaced_rows",),
        "the cache reuses buckets of rows that were replaced",
    ),
    Mutation(
        "decimation keeps no maxima",
        "views/decimate.py",
        "    hi = rows.argmax(axis=1)\n",
        "    hi = rows.argmin(axis=1)\n",
        ("test_decimate.py::test_spike_in_a_million_survives",),
        "a spike disappears from a decimated chart",
    ),
    Mutation(
        "a dtype changed: positions.symbol",
        "core/tables.py",
        "{c: pd.Series(v, dtype=df[c].dtype) for c, v in cols.items()}",
        '{c: pd.Series(v, dtype=df[c].dtype if c != "symbol" else "str") for c, v in cols.items()}',
        ("test_tables.py::test_filled_schemas_first_read_and_incremental",),
        "one column, not the last, becomes str with NaN (equal to \"string\", but not <NA>)",
    ),
    Mutation(
        "a dtype changed: coded columns",
        "core/tables.py",
        '        return pd.array(arr, dtype="string")\n',
        '        return pd.array(arr, dtype="str")\n',
        ("test_tables.py::test_filled_schemas_first_read_and_incremental",),
        "coded string columns (agent_id, symbol, ...) become str with NaN, not string with <NA>",
    ),
    Mutation(
        "account value in the wrong column",
        "core/tables.py",
        "                        e.total_balance,\n                        e.available_balance,\n",
        "                        e.available_balance,\n                        e.total_balance,\n",
        ("test_tables.py::test_seed_values_land_in_tables",),
        "total and available balance swapped on the way into the account table",
    ),
    Mutation(
        "account value in the wrong column, live",
        "core/tables.py",
        "            list(range(first_seq, first_seq + k)), total, available, upnl, used, source,\n",
        "            list(range(first_seq, first_seq + k)), available, total, upnl, used, source,\n",
        ("test_stream.py::test_all_message_types_land_with_the_values_the_simulator_sent",),
        "total and available balance swapped where a stream appends account updates a run at a time",
    ),
    Mutation(
        "a fatal close code retried",
        "live/stream.py",
        "if rcvd is not None and rcvd.code == 1008:",
        "if rcvd is not None and rcvd.code == 1009:",
        ("test_stream_hostile.py::test_unknown_close_code_1008_is_fatal_and_not_retried",),
        "close 1008 (unknown agent) is retried instead of failing the stream",
    ),
    Mutation(
        "a failed stream keeps connecting",
        "live/stream.py",
        "                    self._fail(f.error)\n                    return\n",
        "                    self._fail(f.error)\n                    continue\n",
        ("test_stream.py::test_unknown_agent_fails_fast_and_is_not_retried",),
        "after a fatal error (raised from wait_for as it should be) the task connects again",
    ),
    Mutation(
        "token left in a repr",
        "live/stream.py",
        'f"AgentStream({self.agent_id!r}, url={self.url!r}, ',
        'f"AgentStream({self.agent_id!r}, url={self._url!r}, ',
        ("test_stream_hostile.py::test_token_is_sent_but_never_shown",),
        "repr(stream) shows the URL with ?token=",
    ),
    Mutation(
        "token left in a recording",
        "store/recording.py",
        "        self.url = safe_url(url)\n",
        "        self.url = url\n",
        ("test_recording.py::test_file_format_header_and_no_token",),
        "the recording header keeps the URL's ?token=",
    ),
    Mutation(
        "a bad frame dropped silently",
        "core/tables.py",
        "            self.add_error(agent_id, exc.kind, exc.detail, frame, received_ns, seq=seq, source=source)\n"
        "            return ()\n",
        "            return ()\n",
        ("test_tables.py::test_bad_frames_become_error_rows_and_stream_continues",),
        "a frame that cannot be parsed leaves no errors row",
    ),
    Mutation(
        "backoff without jitter",
        "live/stream.py",
        "delay = random.uniform(0, min(self._reconnect_cap, self._reconnect_base * 2**attempt))",
        "delay = min(self._reconnect_cap, self._reconnect_base * 2**attempt)",
        ("test_stream_hostile.py::test_reconnect_delays_are_exponential_with_full_jitter",),
        "every client retries at the same moment after a server restart",
    ),
    Mutation(
        "max_rows ignored",
        "core/tables.py",
        "self._t = {name: _Table(name, max_rows) for name in TABLE_NAMES}",
        "self._t = {name: _Table(name, None) for name in TABLE_NAMES}",
        ("test_tables.py::test_max_rows_drops_oldest_and_counts",),
        "tables grow without bound although max_rows is set",
    ),
    Mutation(
        "a closed position stays open",
        "core/tables.py",
        "open_now = tuple(p for p in event.positions if p.position_amt != 0.0)",
        "open_now = tuple(event.positions)",
        ("test_tables.py::test_zero_amount_positions_are_not_open",),
        "a position of amount 0 is listed in positions",
    ),
    Mutation(
        "heartbeat sent to a snapshot server",
        "live/stream.py",
        '            if self.dialect == "documented":\n                await ws.send(ping)\n',
        "            await ws.send(ping)\n",
        ("test_roma_current.py::test_no_application_message_reaches_a_real_backend",),
        "the JSON ping goes to real backends, which then stop reading the connection",
    ),
    Mutation(
        "server error frame dropped",
        "core/tables.py",
        '            self.add_error(agent_id, "server_error", e.message, e.message, received_ns, seq, source)\n',
        "            pass\n",
        ("test_roma_current.py::test_server_errors_are_rows_and_counted",),
        "the current backend's error frames leave no errors row",
    ),
    Mutation(
        "a bad frame in a burst dropped silently",
        "core/tables.py",
        "                    self.add_error(agent_id, exc.kind, exc.detail, frame, received_ns + i, seq=seq, source=source)\n",
        "                    pass\n",
        ("test_stream.py::test_a_burst_read_at_once_lands_whole_in_order_stamped_when_taken",),
        "a frame that cannot be parsed, received with others, leaves no errors row",
    ),
    Mutation(
        "frames already read skipped",
        "live/stream.py",
        "            append(f.data.decode())\n",
        "            f.data.decode()\n",
        ("test_stream.py::test_a_burst_read_at_once_lands_whole_in_order_stamped_when_taken",),
        "frames websockets had queued behind the one recv() returned never become rows",
    ),
    Mutation(
        "net equity as the account value",
        "core/protocol.py",
        '        total = _num(rec, "gross_equity", where)\n',
        '        total = _num(rec, "equity", where)\n',
        ("test_roma_current.py::test_equity_points_and_account_state_are_gross_with_the_net_kept_aside",),
        "backfilled balances net of ROMA-01's phantom deposits",
    ),
    Mutation(
        "typed fill path keeps the side's case",
        "core/protocol.py",
        "            _new_trade(ts, d.order_id, d.symbol, side.lower() if side else side, d.quantity, d.price,\n",
        "            _new_trade(ts, d.order_id, d.symbol, side, d.quantity, d.price,\n",
        ("test_protocol.py::test_typed_fast_path_matches_the_stdlib_path",),
        "a fill decoded by the typed path says LONG where parse_object says long",
    ),
    Mutation(
        "typed decision path swaps stop loss and take profit",
        "core/protocol.py",
        "                                  it.position_size_usd, it.stop_loss, it.take_profit, conf, pct))\n",
        "                                  it.position_size_usd, it.take_profit, it.stop_loss, conf, pct))\n",
        ("test_protocol.py::test_typed_fast_path_takes_the_usual_updates",
         "test_protocol.py::test_typed_fast_path_matches_the_stdlib_path"),
        "the typed decision path stores the take profit as the stop loss",
    ),
    Mutation(
        "typed decision path keeps confidence in percent",
        "core/protocol.py",
        "            if 1.0 < conf <= 100.0:\n",
        "            if False:\n",
        ("test_protocol.py::test_typed_fast_path_matches_the_stdlib_path",),
        "a confidence of 75 stays 75 on the typed path, 0.75 on the general one",
    ),
    Mutation(
        "loader takes a line holding two frames as two",
        "store/loading.py",
        "                if decoded is not None and len(decoded) != len(array_text) - len(part) - 1:\n",
        "                if False:\n",
        ("test_recording.py::test_an_odd_line_among_good_ones_is_one_errors_row_naming_it",),
        "a slice decoded as one JSON array gains an element for a line with two objects",
    ),
]


def _check_texts(mutations: list[Mutation], package: Path) -> list[str]:
    """Problems with the mutations themselves (text not found exactly once, no-op)."""
    problems = []
    for m in mutations:
        path = package / m.file
        if not path.exists():
            problems.append(f"{m.name}: {m.file} does not exist")
            continue
        n = path.read_text(encoding="utf-8").count(m.old)
        if n != 1:
            problems.append(f"{m.name}: old text found {n} times in {m.file} (must be exactly once)")
        if m.old == m.new:
            problems.append(f"{m.name}: old and new text are equal")
        if not m.tests:
            problems.append(f"{m.name}: no tests named")
    return problems


def _env(src: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           # a parent run under coverage must not measure (and slow) the children
           if not k.startswith(("COV_CORE_", "COVERAGE_", "PYTEST_"))}
    env["PYTHONPATH"] = str(src)  # the mutated copy first, ahead of the installed package
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # a same-size edit within a second must not reuse a .pyc
    # a mutant may leave a stream running: the session-end leak check would then wait
    # for it before failing; the verdict comes from the named tests alone
    env["ROMA_LEAK_CHECK"] = "0"
    return env


def _pytest(tests: list[str], tests_dir: Path, src: Path, timeout: float) -> tuple[int, str, float]:
    cmd = [
        sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
        # nbval's plugin alone costs ~2 s per process start, and no notebook runs here
        "-p", "no:nbval", "-p", "no:cov", "-o", "addopts=", "-c", str(REPO / "pyproject.toml"), "--rootdir", str(REPO),
        "--timeout", "120", *[str(tests_dir / t) for t in tests],
    ]
    t0 = time.monotonic()
    # cwd is the copy: `python -m` puts the cwd first on sys.path, so the repository's
    # own roma_notebook/ must not be there
    p = subprocess.run(cmd, cwd=src, env=_env(src), capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout + p.stderr, time.monotonic() - t0


def _first_failure(output: str) -> str:
    m = re.search(r"^(?:FAILED|ERROR) (\S+)", output, flags=re.M)
    return m.group(1).rsplit("/", 1)[-1] if m else ""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", action="append", default=[], help="run mutations whose name contains this")
    ap.add_argument("--list", action="store_true", help="list the mutations and exit")
    ap.add_argument("--tests-dir", type=Path, default=REPO / "tests", help="the tests to run (default: tests/)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the run on the unmutated copy")
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds per pytest run")
    ap.add_argument("--jobs", type=int, default=2,
                    help="mutants tested at once, each in its own copy of the package (default 2)")
    args = ap.parse_args(argv)

    chosen = [m for m in MUTATIONS if not args.only or any(o in m.name for o in args.only)]
    if args.list:
        for m in chosen:
            print(f"{m.name:38} {m.file:14} {', '.join(m.tests)}")
        return 0
    if not chosen:
        print("no mutation matches", args.only, file=sys.stderr)
        return 2
    problems = _check_texts(chosen, PACKAGE)
    if problems:
        print("mutation list out of date with the code:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2

    t_start = time.monotonic()
    tests_dir = args.tests_dir.resolve()
    jobs = max(1, min(args.jobs, len(chosen)))
    with tempfile.TemporaryDirectory(prefix="roma-mutants-") as tmp:
        # one copy of the package per worker: a worker plants its mutant in its own copy
        copies = []
        for k in range(jobs):
            src = Path(tmp) / f"w{k}"
            shutil.copytree(PACKAGE, src / "roma_notebook", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            copies.append(src)
        # the children must import the copy, not the repository or the installed package
        src = copies[0]
        probe = subprocess.run([sys.executable, "-c", "import roma_notebook; print(roma_notebook.__file__)"],
                               cwd=src, env=_env(src), capture_output=True, text=True, timeout=60)
        if not probe.stdout.strip().startswith(str(src / "roma_notebook")):
            print(f"the copy is not what gets imported: {probe.stdout.strip()} {probe.stderr}", file=sys.stderr)
            return 2
        if not args.no_baseline:
            union = list(dict.fromkeys(t for m in chosen for t in m.tests))
            rc, out, secs = _pytest(union, tests_dir, src, args.timeout)
            print(f"baseline (no mutation): {len(union)} tests, exit {rc}, {secs:.1f} s", flush=True)
            if rc != 0:
                print(out[-3000:], file=sys.stderr)
                print("the chosen tests must pass on the unmutated code", file=sys.stderr)
                return 1

        free = list(copies)

        def run(m: Mutation) -> tuple[str, float, str, str]:
            src = free.pop()  # list.pop/append are atomic: each worker holds one copy
            path = src / "roma_notebook" / m.file
            original = path.read_text(encoding="utf-8")
            path.write_text(original.replace(m.old, m.new, 1), encoding="utf-8")
            try:
                rc, out, secs = _pytest(list(m.tests), tests_dir, src, args.timeout)
            except subprocess.TimeoutExpired:
                rc, out, secs = -1, "timed out", args.timeout
            finally:
                path.write_text(original, encoding="utf-8")
                free.append(src)
            # 1: tests failed (caught). 0: all passed (not caught). Anything else
            # (collection error, no tests, timeout) means the check itself is broken.
            verdict = {0: "NOT CAUGHT", 1: "caught"}.get(rc, f"error (exit {rc})")
            print(f"{verdict:12} {secs:5.1f} s  {m.name}  [{_first_failure(out) or '-'}]", flush=True)
            if verdict != "caught":
                print(out[-2000:], file=sys.stderr)
            return verdict, secs, _first_failure(out), out

        with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
            futures = [(m, pool.submit(run, m)) for m in chosen]
            results = [(m, *f.result()[:3]) for m, f in futures]
    total = time.monotonic() - t_start
    bad = [m.name for m, v, _, _ in results if v != "caught"]
    print(f"\n{len(results) - len(bad)} of {len(results)} mutations caught in {total:.0f} s")
    if bad:
        print("not caught: " + "; ".join(bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
