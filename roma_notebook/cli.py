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
from typing import Callable, Sequence

__all__ = ["main", "build_parser", "COMMANDS"]

log = logging.getLogger("roma_notebook.cli")


# ---------------------------------------------------------------- sim


def add_sim_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``roma-notebook sim``."""
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="TCP port; 0 picks a free one (default 8000)")
    p.add_argument(
        "--agents",
        default="deepseek-chat-v3.1,qwen3-max",
        help="comma-separated agent ids (default deepseek-chat-v3.1,qwen3-max)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second (default 1)")
    p.add_argument("--token", default=None, help="require ?token=TOKEN on WebSocket and REST calls")
    p.add_argument("--dialect", choices=("documented", "roma-backend"), default="documented")
    p.add_argument("--cycle-minutes", type=float, default=3.0, help="simulated minutes per decision cycle")
    p.add_argument("--snapshot-interval", type=float, default=5.0, help="roma-backend snapshot period (real s)")
    p.add_argument("--clock", choices=("simulated", "wall"), default="simulated", help="message timestamps")
    p.add_argument("--volatility-scale", type=float, default=1.0, help="multiply market volatility")
    p.add_argument("--drop-every", type=float, default=None, help="close all clients (1012) every N real s")
    p.add_argument("--malformed-every", type=int, default=None, help="a broken frame after every N frames")
    p.add_argument("--firehose", type=int, default=None, help="N account_update frames on connect, at full speed")
    p.add_argument("--max-connections-per-ip", type=int, default=64)
    p.add_argument("--log-level", default="INFO", help="logging level for stderr (default INFO)")


def run_sim(args: argparse.Namespace) -> int:
    """Serve a :class:`~roma_notebook.simulator.Simulator` until Ctrl-C/SIGTERM.

    Prints the WebSocket base URL on stdout as the first line (``--port 0``
    users parse it), logs one line per connection on stderr.
    """
    from .simulator import Simulator  # lazy: keep `--help` fast

    agents = [a.strip() for a in args.agents.split(",") if a.strip()]
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
            clock=args.clock,
            volatility_scale=args.volatility_scale,
            drop_every=args.drop_every,
            malformed_every=args.malformed_every,
            firehose=args.firehose,
            max_connections_per_ip=args.max_connections_per_ip,
        )
    except (TypeError, ValueError) as exc:
        print(f"roma-notebook sim: error: {exc}", file=sys.stderr)
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


def _serve(sim, agents: list[str], args: argparse.Namespace, stop: threading.Event) -> int:
    try:
        sim.start()
    except OSError as exc:
        print(f"roma-notebook sim: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    try:
        print(f"ROMA-01 simulator listening on {sim.url}", flush=True)
        print(f"  REST       {sim.http_url}/api/agents", flush=True)
        for a in agents:
            print(f"  WebSocket  {sim.url}/ws/agents/{a}", flush=True)
        print(f"  seed={args.seed} speed={args.speed:g} dialect={args.dialect} (Ctrl-C stops)", flush=True)
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


# ---------------------------------------------------------------- registry

#: name -> (help, add-arguments function, run function)
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "sim": ("serve a seeded ROMA-01 simulator (WebSocket + REST)", add_sim_arguments, run_sim),
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
