"""Tests of min/max decimation: budget, extremes, alignment, NaN gaps, the incremental cache."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from roma_notebook.views.decimate import MinMaxCache, bucket_size, decimate, minmax_indices


def _check(y: np.ndarray, idx: np.ndarray, max_points: int) -> None:
    assert len(idx) <= max_points
    assert idx.dtype == np.int64
    assert np.all(np.diff(idx) > 0), "indices sorted and unique"
    if len(y):
        assert idx[0] == 0 and idx[-1] == len(y) - 1, "first and last row kept"
    finite = y[~np.isnan(y)]
    if len(finite):
        kept = y[idx]
        assert np.nanmax(kept) == finite.max()
        assert np.nanmin(kept) == finite.min()


def test_short_series_comes_back_whole():
    y = np.array([3.0, 1.0, 2.0])
    assert minmax_indices(y, 10).tolist() == [0, 1, 2]
    assert minmax_indices(np.empty(0), 10).tolist() == []


@pytest.mark.parametrize("n", [2000, 2001, 4096, 100_003, 1_000_000])
@pytest.mark.parametrize("offset", [0, 1, 1023, 5_000_000])
def test_budget_and_extremes(n, offset):
    rng = np.random.default_rng(n + offset)
    y = rng.normal(size=n).cumsum()
    idx = minmax_indices(y, 2000, offset)
    _check(y, idx, 2000)
    if n > 10_000:
        # the budget is used, not wasted: at least a quarter of it
        assert len(idx) >= 500


def test_spike_in_a_million_survives():
    y = np.zeros(1_000_000)
    y[123_457] = 1e6
    y[876_543] = -1e6
    idx = minmax_indices(y, 2000)
    assert 123_457 in idx and 876_543 in idx


def test_nan_gaps_lose_to_numbers_but_stay_drawn():
    y = np.sin(np.linspace(0, 50, 200_000))
    y[10_000:60_000] = np.nan  # a long gap covers whole buckets
    y[150_000] = np.nan  # a single NaN inside a bucket must not hide its extremes
    y[150_001] = 5.0
    idx = minmax_indices(y, 1000)
    _check(y, idx, 1000)
    assert 150_001 in idx
    assert np.isnan(y[idx]).any(), "an all-NaN bucket keeps a NaN point so the gap shows"


def test_all_nan():
    y = np.full(10_000, np.nan)
    idx = minmax_indices(y, 100)
    assert len(idx) <= 100 and np.isnan(y[idx]).all()


def test_bucket_size_is_a_power_of_two_within_budget():
    for n in (2001, 10_000, 999_999, 10**7):
        b = bucket_size(n, 2000)
        assert b & (b - 1) == 0
        assert -(-n // b) + 1 <= (2000 - 2) // 2
    with pytest.raises(ValueError):
        bucket_size(10, 3)


def test_aligned_buckets_are_stable_while_the_series_grows():
    # Appending rows must not move the points of earlier full buckets (no shimmer).
    rng = np.random.default_rng(3)
    y = rng.normal(size=700_000)
    a = minmax_indices(y[:600_000], 2000)
    b = minmax_indices(y[:640_000], 2000)
    assert bucket_size(600_000, 2000) == bucket_size(640_000, 2000)
    size = bucket_size(600_000, 2000)
    settled = (600_000 // size) * size
    assert np.array_equal(a[a < settled - 1][1:], b[b < settled - 1][1:])


def test_decimate_returns_matching_pairs():
    x = np.arange(50_000, dtype=float)
    y = np.cos(x / 300)
    xs, ys = decimate(x, y, 500)
    assert len(xs) == len(ys) <= 500
    assert np.array_equal(ys, np.cos(xs / 300))


def test_cache_matches_stateless_while_growing_and_sliding():
    rng = np.random.default_rng(0)
    y = rng.normal(size=1_300_000).cumsum()
    y[rng.integers(0, len(y), 40)] = np.nan
    grow, slide = MinMaxCache(), MinMaxCache()
    for end in range(700_000, 1_300_000, 37_003):
        assert np.array_equal(grow.indices(y[:end], 2000, 0, generation=1),
                              minmax_indices(y[:end], 2000))
        start = end - 400_000
        assert np.array_equal(slide.indices(y[start:end], 2000, start, generation=1),
                              minmax_indices(y[start:end], 2000, start))


def test_cache_scans_only_new_rows():
    y = np.random.default_rng(1).normal(size=1_000_000)
    c = MinMaxCache()
    c.indices(y[:999_000], 2000, generation=0)
    assert c.computed_rows >= 999_000 - 1024
    c.indices(y, 2000, generation=0)
    assert c.computed_rows < 5_000


def test_cache_notices_replaced_rows():
    rng = np.random.default_rng(2)
    y = rng.normal(size=200_000)
    c = MinMaxCache()
    c.indices(y, 1000, generation=0)
    # Same length, same generation, other rows: a lying caller. Fresh values move
    # every bucket's extremes (negating would only swap each argmin with its
    # argmax and give the same indices), so reusing the old buckets is visible.
    # The whole series changes because the spot check looks at the newest 8
    # buckets only: a caller replacing older rows must change the generation.
    z = rng.normal(size=200_000)
    stale = minmax_indices(y, 1000)
    assert not np.array_equal(stale, minmax_indices(z, 1000)), "the replacement must change the answer"
    assert np.array_equal(c.indices(z, 1000, generation=0), minmax_indices(z, 1000))
    # and a new generation always starts over
    assert np.array_equal(c.indices(y, 1000, generation=1), minmax_indices(y, 1000))


@settings(max_examples=200, deadline=None)
@given(
    y=arrays(np.float64, st.integers(0, 3000),
             elements=st.one_of(st.floats(-1e9, 1e9), st.just(float("nan")))),
    max_points=st.integers(6, 400),
    offset=st.integers(0, 10_000),
)
def test_properties(y, max_points, offset):
    _check(y, minmax_indices(y, max_points, offset), max_points)
