"""Command line of roma_notebook: ``roma-notebook <command> ...``.

One function adds a subcommand's arguments and one runs it; both are listed in
:data:`COMMANDS`, so a new subcommand (``record``, ``export``, ``lab``) is two
functions and one line.

Example:
    >>> main(["sim", "--help"])  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Any, Callable, Sequence

__all__ = ["main", "build_parser", "COMMANDS", "LAB_SETTINGS", "write_lab_settings"]

log = logging.getLogger("roma_notebook.cli")


# ---------------------------------------------------------------- sim


def add_sim_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``roma-notebook sim``."""
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="TCP port; 0 picks a free one (default 8000)")
    p.add_argument(
        "--agents",
        default=None,
        help="comma-separated agent ids (default deepseek-chat-v3.1,qwen3-max; with --replay, "
        "every agent of the recording)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--speed", type=float, default=1.0,
        help="simulated seconds per real second (with --replay: recording seconds per real second; default 1)",
    )
    p.add_argument("--token", default=None, help="require ?token=TOKEN on WebSocket and REST calls")
    p.add_argument(
        "--dialect", choices=("documented", "roma-backend", "roma-current"), default="documented",
        help="documented: typed messages of the API reference; roma-backend: the v1.1 backend's "
        "snapshots; roma-current: today's update/keepalive/error frames (default documented)",
    )
    p.add_argument(
        "--error-every", type=int, default=None,
        help="with --dialect roma-current: an error frame instead of every Nth update",
    )
    p.add_argument("--cycle-minutes", type=float, default=3.0, help="simulated minutes per decision cycle")
    p.add_argument("--snapshot-interval", type=float, default=5.0, help="roma-backend/roma-current snapshot period (real s)")
    p.add_argument("--clock", choices=("simulated", "wall"), default="simulated", help="message timestamps")
    p.add_argument(
        "--start-time",
        default=None,
        help="simulated start (ISO time or epoch seconds; default now): with the same --seed a "
        "restarted simulator sends the same cycles again",
    )
    p.add_argument("--volatility-scale", type=float, default=1.0, help="multiply market volatility")
    p.add_argument("--drop-every", type=float, default=None, help="close all clients (1012) every N real s")
    p.add_argument("--malformed-every", type=int, default=None, help="a broken frame after every N frames")
    p.add_argument("--firehose", type=int, default=None, help="N account_update frames on connect, at full speed")
    p.add_argument("--max-connections-per-ip", type=int, default=64)
    p.add_argument(
        "--replay", metavar="RECORDING", default=None,
        help="serve this recording (.jsonl or .jsonl.gz) as a live stream instead of the simulated market",
    )
    p.add_argument("--replay-loop", action="store_true", help="with --replay: start over at the end")
    p.add_argument(
        "--wait-for-client", "--paused", dest="wait_for_client", action="store_true",
        help="with --replay: hold the first frame until the first WebSocket client connects "
        "(without it, playback starts at once and a late client only gets the latest state)",
    )
    p.add_argument(
        "--replay-max-gap", type=float, default=5.0,
        help="with --replay: longest real pause between two frames, in seconds (default 5)",
    )
    p.add_argument(
        "--store", metavar="PATH", default=None,
        help="keep PATH as the current ROMA-01 backend's SQLite store (e.g. data/roma_trading.db): "
        "written every second and at exit; rn.load(PATH) reads it",
    )
    p.add_argument("--store-tz", default="UTC", help="with --store: the simulated host's time zone (default UTC)")
    p.add_argument("--log-level", default="INFO", help="logging level for stderr (default INFO)")


def run_sim(args: argparse.Namespace) -> int:
    """Serve a :class:`~roma_notebook.sim.simulator.Simulator` until Ctrl-C/SIGTERM.

    Prints the WebSocket base URL on stdout as the first line (``--port 0``
    users parse it), logs one line per connection on stderr.
    """
    from .sim.simulator import Simulator  # lazy: keep `--help` fast

    # None: the Simulator's default agents, or with --replay the recording's
    agents = None if args.agents is None else [a.strip() for a in args.agents.split(",") if a.strip()]
    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.token:
        log.warning(
            "binding %s without --token: anyone who can reach this port can connect", args.host
        )
    try:
        sim = Simulator(
            agents,
            seed=args.seed,
            speed=args.speed,
            host=args.host,
            port=args.port,
            token=args.token,
            dialect=args.dialect,
            cycle_minutes=args.cycle_minutes,
            snapshot_interval=args.snapshot_interval,
            error_every=args.error_every,
            clock=args.clock,
            start_time=_start_time(args.start_time),
            volatility_scale=args.volatility_scale,
            drop_every=args.drop_every,
            malformed_every=args.malformed_every,
            firehose=args.firehose,
            max_connections_per_ip=args.max_connections_per_ip,
            replay=args.replay,
            loop=args.replay_loop,
            max_gap=args.replay_max_gap,
            store=args.store,
            store_tz=args.store_tz,
            paused=args.wait_for_client,
        )
    except (TypeError, ValueError, FileNotFoundError) as exc:
        why = str(exc)
        if args.wait_for_client and args.replay is None:
            why = "--wait-for-client applies only with --replay"
        print(f"roma-notebook sim: error: {why}", file=sys.stderr)
        return 2
    stop = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        # Ctrl-C and SIGTERM (kill, CI runners) both just ask for a clean stop,
        # so no KeyboardInterrupt can land between two statements below.
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        return _serve(sim, agents, args, stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _start_time(text: str | None) -> str | float | None:
    """``--start-time``: epoch seconds when numeric, else ISO text (the Simulator parses both)."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return text


def _serve(sim, agents: list[str] | None, args: argparse.Namespace, stop: threading.Event) -> int:
    try:
        sim.start()
    except OSError as exc:
        print(f"roma-notebook sim: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    try:
        print(f"ROMA-01 simulator listening on {sim.url}", flush=True)
        print(f"  REST       {sim.http_url}/api/agents", flush=True)
        for a in sim.agents:
            print(f"  WebSocket  {sim.url}/ws/agents/{a}", flush=True)
        if args.replay is not None:
            print(
                f"  replay={args.replay} speed={args.speed:g} loop={args.replay_loop} (Ctrl-C stops)", flush=True
            )
        else:
            print(f"  seed={args.seed} speed={args.speed:g} dialect={args.dialect} (Ctrl-C stops)", flush=True)
        if args.store is not None:
            print(f"  store      {args.store} (SQLite, times in {args.store_tz})", flush=True)
        if args.wait_for_client:
            print("  paused: playback starts when the first client connects", flush=True)
            while not stop.is_set():
                try:
                    sim.wait_for_clients(1, timeout=0.2)
                except TimeoutError:
                    if not sim.is_running:
                        log.error("the simulator thread ended unexpectedly")
                        return 1
                    continue
                sim.play()
                print("  a client connected: playing", flush=True)
                break
        # A timed wait keeps noticing a dead simulator thread.
        while not stop.wait(0.2):
            if not sim.is_running:
                log.error("the simulator thread ended unexpectedly")
                return 1
    except KeyboardInterrupt:  # not on the main thread: no handler installed
        pass
    finally:
        sim.stop()
    log.info("simulator stopped")
    return 0


# ---------------------------------------------------------------- record


def add_record_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``roma-notebook record URL AGENT[,AGENT...] OUT``."""
    p.add_argument("url", help="server base URL, e.g. ws://localhost:8000")
    p.add_argument("agents", metavar="AGENT", help="agent id, or several separated by commas")
    p.add_argument("out", metavar="OUT", help="recording path, e.g. session.jsonl.gz (gzip when .gz)")
    p.add_argument("--token", default=None, help="auth token (never written to the recording)")
    p.add_argument("--duration", type=float, default=None, help="seconds to record (default: until Ctrl-C)")
    p.add_argument("--quiet", action="store_true", help="no progress line")


def run_record(args: argparse.Namespace) -> int:
    """Record every frame of the agents' streams to OUT until the duration ends or Ctrl-C.

    Returns 1 when every stream failed (unknown agent, bad token, no server).
    """
    import time

    from .live.stream import connect

    agents = [a.strip() for a in str(args.agents).split(",") if a.strip()]
    if not agents:
        print("roma-notebook record: give at least one agent id", file=sys.stderr)
        return 2
    try:
        s = connect(agents[0] if len(agents) == 1 else agents, url=args.url, token=args.token, record_to=args.out)
    except (TypeError, ValueError, OSError) as exc:
        print(f"roma-notebook record: {exc}", file=sys.stderr)
        return 2
    deadline = None if args.duration is None else time.monotonic() + args.duration
    code = 0
    try:
        while deadline is None or time.monotonic() < deadline:
            left = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
            time.sleep(left)
            state = s.state
            states = list(state.values()) if isinstance(state, dict) else [state]
            if not args.quiet:
                print(
                    f"\r{'/'.join(states)}: account={len(s.account)} decisions={len(s.decisions)} "
                    f"errors={len(s.errors)}",
                    end="", file=sys.stderr, flush=True,
                )
            if all(st == "failed" for st in states):
                streams = s.streams.values() if hasattr(s, "streams") else [s]
                for st in streams:
                    print(f"\nroma-notebook record: {st.last_error}", file=sys.stderr)
                code = 1
                break
    except KeyboardInterrupt:
        pass
    finally:
        s.stop()
        if not args.quiet:
            print(file=sys.stderr)
    print(_record_summary(s, args.out), flush=True)
    return code


def _record_summary(s: Any, out: str) -> str:
    """One line saying what was written: frames per agent, rows, errors, file size."""
    import os

    per_agent = ", ".join(f"{a} {int(n)}" for a, n in s.stats()["messages"].items())
    try:
        size = f"{os.path.getsize(out) / 1e6:.2f} MB"
    except OSError:
        size = "not written"
    return (f"recorded {out} ({size}): frames {per_agent}; "
            f"{len(s.decisions)} decisions, {len(s.trades)} fills, {len(s.errors)} errors")


# ---------------------------------------------------------------- export


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``roma-notebook export IN [IN ...] OUTDIR``."""
    p.add_argument("inputs", nargs="+", metavar="IN", help="recording, ROMA-01 logs folder or Parquet export")
    p.add_argument("outdir", metavar="OUTDIR", help="output folder")
    p.add_argument("--no-date-partition", dest="partition_by_date", action="store_false",
                   help="partition by agent only, not by agent and date")
    p.add_argument("--max-rows", type=int, default=None, help="keep at most this many rows per table")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")


def run_export(args: argparse.Namespace) -> int:
    """Load the inputs (merged) and write them as a hive-partitioned Parquet export."""
    from pathlib import Path

    from .store.loading import load
    from .store.parquet import to_parquet

    if Path(args.outdir).resolve() in {Path(i).resolve() for i in args.inputs}:
        print("roma-notebook export: OUTDIR must differ from the inputs", file=sys.stderr)
        return 2
    try:
        rec = load(list(args.inputs), max_rows=args.max_rows, progress=False if args.quiet else None)
        out = to_parquet(rec, args.outdir, partition_by_date=args.partition_by_date)
    except (FileNotFoundError, ValueError) as exc:
        print(f"roma-notebook export: {exc}", file=sys.stderr)
        return 2
    if not args.quiet:
        counts = rec.tables.counts()
        rows = ", ".join(f"{n}={c}" for n, c in counts.items() if c)
        print(f"wrote {out} ({len(rec.agent_ids)} agents; {rows or 'no rows'})")
    return 0


# ---------------------------------------------------------------- lab


def add_lab_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``roma-notebook lab``."""
    p.add_argument("--notebook", default=None,
                   help="notebook to open (default notebooks/01_live_agent.ipynb when present)")
    p.add_argument("--port", type=int, default=8888, help="JupyterLab port; 0 picks a free one (default 8888)")
    p.add_argument("--no-sim", action="store_true", help="do not start the simulator (use ROMA_URL)")
    p.add_argument("--agents", default="deepseek-chat-v3.1,qwen3-max,claude-sonnet-4.5,gpt-5")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--speed", type=float, default=60.0, help="simulated seconds per real second (default 60)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")
    p.add_argument("--state-dir", default=".roma-notebook",
                   help="where JupyterLab keeps its runtime files (default ./.roma-notebook)")


#: JupyterLab user settings that ``roma-notebook lab`` starts with (written only
#: where the user has no setting file of that plugin yet, so their changes stay):
#: no news/update pop-up on first start, and no autosave, so running the example
#: notebooks does not rewrite the tracked files (Ctrl-S still saves).
LAB_SETTINGS: dict[str, dict] = {
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
}


def write_lab_settings(settings_dir: Any, settings: dict[str, dict] | None = None) -> None:
    """Write JupyterLab user-setting files (``<plugin>.jupyterlab-settings``) that are missing.

    Args:
        settings_dir: the folder JupyterLab reads through ``JUPYTERLAB_SETTINGS_DIR``.
        settings: plugin path -> settings; default :data:`LAB_SETTINGS`.
    """
    import json
    from pathlib import Path

    for plugin, values in (LAB_SETTINGS if settings is None else settings).items():
        f = Path(settings_dir) / f"{plugin}.jupyterlab-settings"
        if not f.exists():
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(json.dumps(values, indent=2) + "\n")


def _lab_line_worth_showing(line: str) -> bool:
    """Lab log lines echoed to the terminal: warnings, errors and kernel output, not INFO chatter."""
    if line.startswith("[I ") or line.startswith("[D "):
        return False
    text = line.strip()
    # lab's own banner around the URL (we print the URL once ourselves)
    return bool(text) and "token=" not in text and not text.startswith(("To access the server", "Or copy and paste",
                                                                          "Jupyter Server is running", "file://"))


def run_lab(args: argparse.Namespace) -> int:
    """Start the simulator and JupyterLab on the example notebook; Ctrl-C stops both.

    The simulator's URL reaches the notebook as ``ROMA_URL``. JupyterLab's runtime,
    config, settings and workspace files go under ``--state-dir`` (in the current
    folder), so nothing is written to the home directory. Its full log goes to
    ``<state-dir>/lab.log``; the terminal shows the URL once, and warnings and errors.
    Each start opens only the chosen notebook (the previous session's tabs, each
    with a kernel, are not restored).
    """
    import os
    import shutil
    import subprocess
    from pathlib import Path

    if shutil.which("jupyter") is None and not (Path(sys.executable).parent / "jupyter").exists():
        print("roma-notebook lab: JupyterLab is not installed; install the lab extra: "
              "pip install 'roma-notebook[lab]' (from a clone: pip install -e \".[lab]\")", file=sys.stderr)
        return 2
    nb = Path(args.notebook) if args.notebook else Path("notebooks/01_live_agent.ipynb")
    if args.notebook and not nb.exists():
        print(f"roma-notebook lab: no such notebook: {nb}", file=sys.stderr)
        return 2
    root = nb.parent if nb.exists() else Path.cwd()
    state = Path(args.state_dir).resolve()
    env = dict(os.environ)
    for var, sub in (("JUPYTER_RUNTIME_DIR", "runtime"), ("JUPYTER_CONFIG_DIR", "config"),
                     ("JUPYTER_DATA_DIR", "data"), ("IPYTHONDIR", "ipython"),
                     ("JUPYTERLAB_SETTINGS_DIR", "settings")):
        (state / sub).mkdir(parents=True, exist_ok=True)
        env[var] = str(state / sub)
    write_lab_settings(state / "settings")
    workspaces = state / "workspaces"
    workspaces.mkdir(exist_ok=True)
    for f in workspaces.glob("*.jupyterlab-workspace"):
        f.unlink()
    sim = None
    if not args.no_sim:
        from .sim.simulator import Simulator

        agents = [a.strip() for a in args.agents.split(",") if a.strip()]
        sim = Simulator(agents, seed=args.seed, speed=args.speed).start()
        env["ROMA_URL"] = sim.url
        env.pop("ROMA_TOKEN", None)
        print(f"ROMA-01 simulator listening on {sim.url} (health: {sim.http_url}/health)", flush=True)
    jupyter = str(Path(sys.executable).parent / "jupyter")
    if not os.path.exists(jupyter):
        jupyter = shutil.which("jupyter") or "jupyter"
    cmd = [
        jupyter, "lab", f"--port={args.port}", "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.root_dir={root.resolve()}", f"--LabApp.workspaces_dir={workspaces}",
        "--ServerApp.port_retries=0",
    ]
    if args.no_browser:
        cmd.append("--no-browser")
    if nb.exists():
        cmd.append(f"--LabApp.default_url=/lab/tree/{nb.name}")
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    # Its own session: Ctrl-C reaches only us, and we stop lab without its
    # interactive "Shutdown this Jupyter server (y/[n])?" prompt.
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)
    code = 0
    previous = {}
    if threading.current_thread() is threading.main_thread():
        # SIGTERM, and SIGHUP of a closed terminal (lab has its own session and
        # does not get that one), must stop JupyterLab too, not orphan it
        def _interrupt(*_: object) -> None:
            raise KeyboardInterrupt

        for sig in (signal.SIGTERM, signal.SIGHUP):
            previous[sig] = signal.signal(sig, _interrupt)
    shown = False
    try:
        assert proc.stderr is not None
        with open(state / "lab.log", "w") as log_file:
            for line in proc.stderr:
                log_file.write(line)
                log_file.flush()
                if not shown and "http://127.0.0.1:" in line and "token=" in line and "/lab" in line:
                    shown = True
                    print(f"JupyterLab: {line.strip().split()[-1]}", flush=True)
                    print(f"  (full log in {state / 'lab.log'}; Ctrl-C stops JupyterLab and the simulator)",
                          flush=True)
                elif _lab_line_worth_showing(line):
                    sys.stderr.write(line)
        code = proc.wait()
    except KeyboardInterrupt:
        print("\nstopping JupyterLab" + (" and the simulator" if sim is not None else "") + " ...", flush=True)
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if sim is not None:
            sim.stop()
    print("stopped", flush=True)
    return code


# ---------------------------------------------------------------- registry

#: name -> (help, add-arguments function, run function)
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "sim": ("serve a seeded ROMA-01 simulator (WebSocket + REST)", add_sim_arguments, run_sim),
    "record": ("record agents' WebSocket frames to a JSON Lines file", add_record_arguments, run_record),
    "export": ("convert recordings, ROMA-01 logs or exports to Parquet", add_export_arguments, run_export),
    "lab": ("start the simulator and JupyterLab on the live notebook", add_lab_arguments, run_lab),
}


def build_parser() -> argparse.ArgumentParser:
    """The ``roma-notebook`` parser with one subparser per :data:`COMMANDS` entry."""
    parser = argparse.ArgumentParser(
        prog="roma-notebook", description="ROMA-01 agents in notebooks: simulator and tools."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (help_text, add_args, run) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_args(p)
        p.set_defaults(_run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``roma-notebook`` and ``python -m roma_notebook``.

    Returns:
        The process exit status.

    Example:
        >>> main(["sim", "--port", "0", "--speed", "60"])  # doctest: +SKIP
    """
    args = build_parser().parse_args(argv)
    level = getattr(logging, str(getattr(args, "log_level", "INFO")).upper(), logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # websockets logs every handshake itself; our simulator logs one line per connection.
    logging.getLogger("roma_notebook.simulator.websockets").setLevel(max(level, logging.WARNING))
    return args._run(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
