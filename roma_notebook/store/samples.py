"""The sample session shipped with the package, so notebooks and Binder have
something to analyse with no server at all.

Example:
    >>> import roma_notebook as rn
    >>> rec = rn.load(rn.sample_recording(), progress=False)
    >>> sorted(rec.agent_ids)[:2]
    ['claude-sonnet-4.5', 'deepseek-chat-v3.1']
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

__all__ = ["sample_recording", "make_sample_recording", "SAMPLE_AGENTS"]

SAMPLE_AGENTS = ("deepseek-chat-v3.1", "qwen3-max", "claude-sonnet-4.5", "gpt-5")
_SAMPLE = Path(__file__).parent.parent / "data" / "sample_session.jsonl.gz"


def sample_recording() -> Path:
    """Path of the bundled sample recording (4 simulated agents, 200 cycles = 10 simulated hours each)."""
    if not _SAMPLE.exists():  # a broken install, not a user error
        raise FileNotFoundError(f"sample recording missing from the package: {_SAMPLE}")
    return _SAMPLE


def make_sample_recording(
    path: str | Path = _SAMPLE,
    *,
    agents: Iterable[str] = SAMPLE_AGENTS,
    seed: int = 7,
    speed: float = 2400.0,
    cycles: int = 200,
    start_time: str = "2025-11-02T08:00:00Z",
) -> Path:
    """Record a seeded simulator session (how the bundled sample was made).

    Run ``python -m roma_notebook.store.samples`` to rebuild the bundled file.
    """
    from ..sim.simulator import Simulator
    from ..live.stream import connect

    agents = tuple(agents)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    with Simulator(agents, seed=seed, speed=speed, start_time=start_time) as sim:
        group = connect(list(agents), url=sim.url, record_to=path)
        try:
            group.wait_for("decision", count=cycles, timeout=600)
        finally:
            group.stop()
    return path


if __name__ == "__main__":
    p = make_sample_recording()
    print(p, p.stat().st_size, "bytes")
