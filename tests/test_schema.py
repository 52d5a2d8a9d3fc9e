"""schema.py is the one declaration of the tables: the README's tables section, the
writer's frames (empty, filled, from a simulator session), Parquet round trips and
analytics all agree with it exactly."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from roma_notebook.analysis import analytics as A
from roma_notebook.core import schema
from roma_notebook.core.tables import TABLE_COLUMNS, TABLE_NAMES, Tables, empty_frame

from test_tables import _fill_all  # tests/ is on sys.path under pytest

README = Path(__file__).resolve().parents[1] / "README.md"


# ------------------------------------------------------------------ the README


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _names(cell: str) -> list[str]:
    """Column names of a README cell: ``a, b (note), c`` -> [a, b, c]."""
    cell = re.sub(r"\([^)]*\)", "", cell)
    return [c.strip() for c in cell.split(",") if c.strip()]


def _md_table(lines: list[str], header: list[str]) -> list[list[str]]:
    for i, line in enumerate(lines):
        if line.startswith("|") and _cells(line) == header:
            rows = []
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                rows.append(_cells(row))
            return rows
    raise AssertionError(f"README's tables section has no table headed {header}")


def parse_readme(text: str) -> dict:
    """Table names, rows, columns and dtypes as the README's "## Tables" section gives them."""
    section = text.split("\n## Tables\n", 1)[1].split("\n## ", 1)[0]
    lines = section.splitlines()
    m = re.search(r"Every table starts with (.+?) and ends with `(\w+)`", section.replace("\n", " "))
    assert m, "README no longer says which columns every table starts and ends with"
    first = re.findall(r"`(\w+)`", m.group(1))
    last = [m.group(2)]
    tables: dict[str, tuple[str, ...]] = {}
    rows: dict[str, str] = {}
    for name, row, cols in _md_table(lines, ["table", "one row per", "columns beyond the common ones"]):
        name = name.strip("`")
        same = re.fullmatch(r"as `(\w+)`", cols)
        own = tables[same.group(1)][len(first):-1] if same else tuple(_names(cols))
        tables[name] = (*first, *own, *last)
        rows[name] = row
    listed: dict[str, str] = {}
    for dtype, cols in _md_table(lines, ["dtype", "columns"]):
        dtype = re.match(r"`([^`]+)`", dtype).group(1)
        for c in _names(cols):
            assert c not in listed, f"README lists {c} under {listed[c]} and {dtype}"
            listed[c] = dtype
    assert re.search(r"Every column is `float64` except", section), "README lost its dtype default"
    dtypes = {n: {c: listed.get(c, "float64") for c in cols} for n, cols in tables.items()}
    return {"tables": tables, "rows": rows, "dtypes": dtypes, "listed": set(listed)}


def check_readme(text: str) -> None:
    got = parse_readme(text)
    assert list(got["tables"]) == list(schema.TABLE_NAMES)
    for name in schema.TABLE_NAMES:
        assert got["tables"][name] == schema.columns(name), name
        assert got["dtypes"][name] == schema.dtypes(name), name
        assert got["rows"][name] == schema.ROW[name], name
    everywhere = {c for n in schema.TABLE_NAMES for c in schema.columns(n)}
    assert got["listed"] <= everywhere, f"README lists unknown columns {got['listed'] - everywhere}"


def test_readme_tables_match_the_schema():
    check_readme(README.read_text(encoding="utf-8"))


def test_readme_check_fails_on_any_drift():
    text = README.read_text(encoding="utf-8")
    # a column added to the README only
    with pytest.raises(AssertionError):
        check_readme(text.replace("| cycle, ai_reasoning, n_decisions |", "| cycle, ai_reasoning, n_decisions, extra |"))
    # a column dropped from the README
    with pytest.raises(AssertionError):
        check_readme(text.replace("adjusted_balance |", "|", 1))
    # a dtype changed in the README
    with pytest.raises(AssertionError):
        check_readme(text.replace("| `int64` | seq, n_decisions |", "| `int64` | seq |"))
    # a table missing from the README
    with pytest.raises(AssertionError):
        check_readme(re.sub(r"\| `insights` \|.*\n", "", text))


def test_readme_check_fails_when_the_schema_gains_a_column(tmp_path):
    # A column added to schema.py and not to the README fails the README test: run it
    # against a copy of the package whose schema has one more column.
    import roma_notebook

    pkg = Path(roma_notebook.__file__).parent
    where = Path(schema.__file__).relative_to(pkg)  # the schema module inside the package
    copy = tmp_path / "roma_notebook"
    subprocess.run(["cp", "-r", str(pkg), str(copy)], check=True)
    src = (copy / where).read_text(encoding="utf-8")
    planted = src.replace(
        '("n_decisions", "q", "number of decision items (decisions rows) in the cycle, count"),',
        '("n_decisions", "q", "number of decision items (decisions rows) in the cycle, count"),\n'
        '        ("planted", "f", "a column the README does not list"),',
    )
    assert planted != src
    (copy / where).write_text(planted, encoding="utf-8")
    tests = Path(__file__).parent
    code = (
        f"import sys; sys.path[:0] = [{str(tmp_path)!r}, {str(tests)!r}]\n"
        "import roma_notebook.core.schema as s; assert 'planted' in s.columns('cycles'), s.__file__\n"
        "import test_schema\n"
        "try:\n    test_schema.test_readme_tables_match_the_schema()\n"
        "except AssertionError:\n    print('FAILED AS IT SHOULD')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "FAILED AS IT SHOULD" in out.stdout, out.stdout + out.stderr


# ------------------------------------------------------------------ the declaration

# The binding columns users rely on (the design contract; names only, in order): a
# column may be added anywhere, never removed or renamed, even in schema.py and the
# README together.
_POS = ("symbol", "side", "position_amt", "entry_price", "mark_price", "unrealized_profit",
        "pnl_percentage", "leverage", "liquidation_price")
BINDING = {
    "account": ("total_balance", "available_balance", "unrealized_pnl", "used_percentage"),
    "positions": _POS,
    "position_history": _POS,
    "cycles": ("cycle", "ai_reasoning", "n_decisions"),
    "decisions": ("cycle", "action", "symbol", "quantity", "leverage", "reason",
                  "position_size_usd", "stop_loss", "take_profit"),
    "trades": ("order_id", "symbol", "side", "quantity", "price", "leverage", "status"),
    "closed_trades": ("symbol", "side", "entry_price", "close_price", "quantity", "leverage",
                      "open_time", "close_time", "pnl_usdt", "pnl_pct"),
    "status": ("is_running", "cycle_count", "last_decision_time"),
    "performance": ("total_trades", "wins", "losses", "win_rate", "avg_profit", "avg_loss",
                    "profit_factor", "sharpe_ratio", "max_drawdown", "total_pnl"),
    "errors": ("kind", "detail", "raw"),
    "connections": ("event", "detail"),
    "insights": ("insight_id", "category", "title", "summary", "detailed_findings", "confidence",
                 "recommendations", "supporting_trade_ids", "is_active", "created_at", "deprecated_at"),
}


def test_binding_columns_kept():
    assert set(BINDING) <= set(schema.TABLE_NAMES)
    for name, cols in BINDING.items():
        want = ("agent_id", "timestamp", "received_at", "seq", *cols)
        assert [c for c in schema.columns(name) if c in want] == list(want), name



def test_declaration_is_consistent():
    assert schema.TABLE_NAMES == TABLE_NAMES and schema.TABLE_COLUMNS == TABLE_COLUMNS
    assert set(schema.ROW) == set(schema.TABLE_NAMES)
    seen: dict[str, str] = {}
    for name in schema.TABLE_NAMES:
        cols = schema.columns(name)
        assert len(set(cols)) == len(cols), name
        assert cols[:4] == ("agent_id", "timestamp", "received_at", "seq") and cols[-1] == "source"
        for c, k in schema.kinds(name):
            assert k in schema.KIND_DTYPE, (name, c, k)
            # the README's one dtype list per name relies on this
            assert seen.setdefault(c, schema.KIND_DTYPE[k]) == schema.KIND_DTYPE[k], (name, c)
        for c, meaning in schema.meanings(name).items():
            assert meaning.strip() and "\n" not in meaning, (name, c)


def test_percent_only_in_pct_columns_or_listed():
    # the project's rule: a percent lives in a column ending _pct; ROMA-01's own names
    # that break it are listed in PERCENT_NOT_PCT, and nothing else may
    breaking = {
        (n, c)
        for n in schema.TABLE_NAMES
        for c, m in schema.meanings(n).items()
        if "percent" in m and not c.endswith("_pct")
    }
    assert breaking == set(schema.PERCENT_NOT_PCT)
    for n in schema.TABLE_NAMES:
        for c, m in schema.meanings(n).items():
            if c.endswith("_pct"):
                assert "percent" in m, (n, c)


def test_unknown_table_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown table 'acount'; tables are account"):
        schema.dtypes("acount")


def test_import_does_not_import_pandas():
    code = "import sys, roma_notebook.core.schema as s; s.dtypes('account'); print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=Path(schema.__file__).parents[1])
    assert out.stdout.strip() == "False", out.stdout + out.stderr


def test_describe():
    d = schema.describe()
    assert len(d) == sum(len(schema.columns(n)) for n in schema.TABLE_NAMES)
    row = d[(d.table == "cycles") & (d.column == "n_decisions")].iloc[0]
    assert row["dtype"] == "int64" and "count" in row["meaning"]
    assert schema.describe("account")["column"].tolist() == list(schema.columns("account"))


# ------------------------------------------------------------------ frames


def assert_schema(name: str, df: pd.DataFrame) -> None:
    assert tuple(df.columns) == schema.columns(name), name
    got = {c: str(t) for c, t in df.dtypes.items()}
    assert got == schema.dtypes(name), name
    for c, d in schema.dtypes(name).items():
        if d == "string":  # pandas' default "str" also equals "string" but holds NaN
            assert df[c].dtype.na_value is pd.NA, (name, c)


@pytest.mark.parametrize("name", TABLE_NAMES)
def test_empty_frames(name):
    assert_schema(name, empty_frame(name))
    assert_schema(name, schema.empty_frame(name))
    assert_schema(name, Tables().frame(name))


@pytest.fixture(scope="module")
def filled() -> Tables:
    t = Tables()
    _fill_all(t, 0)
    assert all(len(t.frame(n)) for n in TABLE_NAMES), {n: len(t.frame(n)) for n in TABLE_NAMES}
    return t


@pytest.mark.parametrize("name", TABLE_NAMES)
def test_filled_frames(filled, name):
    assert_schema(name, filled.frame(name))


def test_parquet_round_trip(filled, tmp_path):
    import roma_notebook as rn
    from roma_notebook.store.parquet import to_parquet

    to_parquet(filled, tmp_path / "out")
    with pytest.warns(rn.LoadWarning, match="1 unusable"):  # the planted "{broken" frame
        back = rn.load(tmp_path / "out", progress=False)
    for name in TABLE_NAMES:
        assert_schema(name, back.frame(name))
        pd.testing.assert_frame_equal(back.frame(name), filled.frame(name), obj=name)


def test_sample_session_frames():
    import roma_notebook as rn

    rec = rn.load(rn.sample_recording(), progress=False)
    for name in TABLE_NAMES:
        assert_schema(name, rec.frame(name))
    assert len(rec.frame("cycles")) and len(rec.frame("decisions"))


def test_live_simulator_session_frames():
    from roma_notebook.sim.simulator import Simulator
    from roma_notebook.live.stream import connect

    with Simulator(("deepseek-chat-v3.1",), seed=3, speed=600) as sim:
        sim.start()
        stream = connect("deepseek-chat-v3.1", url=sim.url)
        try:
            stream.wait_for("decision", count=2, timeout=30)
            frames = {n: stream.tables.frame(n) for n in TABLE_NAMES}
        finally:
            stream.stop()
    for name, df in frames.items():
        assert_schema(name, df)
    assert len(frames["cycles"]) >= 2 and len(frames["account"])


@pytest.mark.parametrize("name", TABLE_NAMES)
def test_analytics_normalises_to_the_schema(filled, name):
    # analytics accepts hand-made frames and brings them to the tables' own dtypes
    assert_schema(name, A._norm(filled.frame(name), name).loc[:, list(schema.columns(name))])
    assert_schema(name, A._norm(None, name))
