"""Min/max decimation of long series before they go to the browser.

A live chart of a million account rows cannot ship a million points per refresh:
the comm message would be megabytes and the browser would stall. Min/max
decimation keeps, for each bucket of consecutive rows, the row with the smallest
and the row with the largest value, plus the first and last row. The drawn line
then covers exactly the same vertical extent as the full series in every bucket,
so spikes and drawdowns never disappear (an average or a stride would hide them).

Buckets are aligned to absolute row numbers (``offset + i``) and their size is a
power of two. A series that grows by a few rows per refresh therefore keeps the
same buckets, and the same points, for all but its last bucket: the line does not
shimmer from one refresh to the next as it would if bucket edges moved.

Pure numpy, no pandas or widgets, so it is cheap to test and to reuse.

Example:
    >>> import numpy as np
    >>> y = np.sin(np.linspace(0, 20, 100_000))
    >>> idx = minmax_indices(y, 500)
    >>> len(idx) <= 500, float(y[idx].min()) == float(y.min()), int(idx[-1]) == len(y) - 1
    (True, True, True)
"""

from __future__ import annotations

import numpy as np

__all__ = ["minmax_indices", "MinMaxCache", "decimate", "bucket_size"]


def bucket_size(n: int, max_points: int) -> int:
    """The power-of-two bucket size :func:`minmax_indices` uses for ``n`` rows.

    Each bucket contributes at most two points, the first and last rows two more,
    and an unaligned window can touch one bucket more than ``n / size``; the size
    is the smallest power of two that keeps all that within ``max_points``.

    Example:
        >>> bucket_size(1_000_000, 2000)
        1024
    """
    if max_points < 6:
        raise ValueError(f"max_points must be at least 6, got {max_points!r}")
    if n <= max_points:
        return 1
    buckets = (max_points - 2) // 2  # buckets we may touch
    # ceil(n / b) + 1 <= buckets  <=>  b >= n / (buckets - 1)
    need = -(-n // (buckets - 1))
    return 1 << max(0, int(need - 1).bit_length())


def _argext(y: np.ndarray, b: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-bucket argmin and argmax (local to each bucket) of ``y`` cut into ``b``-rows.

    ``len(y)`` must be a multiple of ``b``. NaN must lose both contests, but a
    bucket of only NaN still yields a NaN point so the gap is drawn.
    """
    rows = y.reshape(-1, b)
    lo = rows.argmin(axis=1)
    hi = rows.argmax(axis=1)
    # numpy's argmin/argmax stop at the first NaN: only buckets whose pick is NaN
    # hold one, so only those (usually none) are redone with NaN masked out. This
    # keeps the common no-NaN case at two passes over the data.
    r = np.arange(len(lo))
    bad = np.isnan(rows[r, lo]) | np.isnan(rows[r, hi])
    if bad.any():
        sub = rows[bad]
        nan = np.isnan(sub)
        lo[bad] = np.where(nan, np.inf, sub).argmin(axis=1)
        hi[bad] = np.where(nan, -np.inf, sub).argmax(axis=1)
    return lo, hi


def minmax_indices(y: np.ndarray, max_points: int, offset: int = 0) -> np.ndarray:
    """Indices of the rows of ``y`` to draw, at most ``max_points`` of them.

    Args:
        y: the values, 1-D float array (NaN allowed: a gap stays a gap).
        max_points: upper bound on the number of returned indices (>= 6).
        offset: absolute row number of ``y[0]``; buckets are aligned to multiples
            of the bucket size in that numbering, so a sliding window keeps the
            same buckets as the full series.

    Returns:
        Sorted, unique int64 indices into ``y``. They always include the first and
        last row and, for every bucket, its minimum and maximum, so ``y[idx].min()``
        and ``y[idx].max()`` equal those of ``y`` (ignoring NaN). A series no longer
        than ``max_points`` comes back whole.

    Example:
        >>> minmax_indices(np.array([0.0, 5.0, -3.0, 1.0]), 10).tolist()
        [0, 1, 2, 3]
    """
    return MinMaxCache().indices(y, max_points, offset)


class MinMaxCache:
    """Incremental :func:`minmax_indices` for a series that only grows.

    Aligned buckets make every full bucket's extremes permanent: when rows are
    appended only the last buckets are new. The cache keeps the extremes of the
    full buckets it has seen (absolute row numbers) and computes only the new ones,
    so a refresh of a million-row history costs the new rows, not the million.
    It starts over when the bucket size changes (the series doubled), when the
    caller's ``generation`` changes (rows were replaced, not appended), or when a
    spot check finds the remembered extremes no longer where they were.

    Example:
        >>> c = MinMaxCache()
        >>> y = np.random.default_rng(1).normal(size=50_000)
        >>> a = c.indices(y[:40_000], 1000, generation=0)
        >>> b = c.indices(y, 1000, generation=0)           # reuses 40k rows of buckets
        >>> np.array_equal(b, minmax_indices(y, 1000))
        True
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget everything (the next call computes from scratch)."""
        self._b = 0
        self._gen: object = None
        self._k0 = self._k1 = 0  # cached full buckets: [k0, k1) in bucket numbers
        self._lo = self._hi = np.empty(0, np.int64)  # absolute row numbers
        self._lov = self._hiv = np.empty(0)  # their values, for the spot check
        self.computed_rows = 0  # rows scanned by the last call (for tests/benchmarks)

    def indices(
        self, y: np.ndarray, max_points: int, offset: int = 0, generation: object = None
    ) -> np.ndarray:
        """Like :func:`minmax_indices`; ``generation=None`` disables reuse.

        Args:
            y: rows ``offset .. offset + len(y)`` of the series.
            generation: any value that stays equal while the series only grows.
        """
        y = np.asarray(y)
        if y.ndim != 1:
            raise ValueError(f"y must be 1-D, got shape {y.shape}")
        n = len(y)
        b = bucket_size(n, max_points)
        if b == 1:
            self.computed_rows = n
            return np.arange(n, dtype=np.int64)
        y = y.astype(np.float64, copy=False)
        A, B = int(offset), int(offset) + n  # absolute rows [A, B)
        ka = -(-A // b)  # first full bucket
        kb = max(B // b, ka)  # end of full buckets
        reuse = (
            generation is not None
            and generation == self._gen
            and b == self._b
            and self._k0 <= ka <= self._k1
            and self._check(y, A, ka)
        )
        if not reuse:
            self._b, self._gen = b, generation
            self._k0 = self._k1 = ka
            self._lo = self._hi = np.empty(0, np.int64)
            self._lov = self._hiv = np.empty(0)
        elif ka > self._k0:  # drop buckets that slid out of the window
            cut = ka - self._k0
            self._lo, self._hi = self._lo[cut:], self._hi[cut:]
            self._lov, self._hiv = self._lov[cut:], self._hiv[cut:]
            self._k0 = ka
        computed = 0
        if kb > self._k1:
            s, e = self._k1 * b - A, kb * b - A
            lo, hi = _argext(y[s:e], b)
            base = np.arange(self._k1, kb, dtype=np.int64) * b
            lo += base
            hi += base
            self._lo = np.concatenate([self._lo, lo])
            self._hi = np.concatenate([self._hi, hi])
            self._lov = np.concatenate([self._lov, y[lo - A]])
            self._hiv = np.concatenate([self._hiv, y[hi - A]])
            self._k1 = kb
            computed += e - s
        elif kb < self._k1:  # cannot happen while only growing; stay correct anyway
            keep = kb - self._k0
            self._lo, self._hi = self._lo[:keep], self._hi[:keep]
            self._lov, self._hiv = self._lov[:keep], self._hiv[:keep]
            self._k1 = kb
        parts = [np.array([0, n - 1], dtype=np.int64), self._lo - A, self._hi - A]
        head_end = min(ka * b - A, n)
        if head_end > 0:  # rows before the first aligned edge
            lo, hi = _argext(y[:head_end], head_end)
            parts += [lo, hi]
            computed += head_end
        tail = max(kb * b - A, head_end)
        if tail < n:  # the growing last bucket
            lo, hi = _argext(y[tail:], n - tail)
            parts += [lo + tail, hi + tail]
            computed += n - tail
        self.computed_rows = computed
        return np.unique(np.concatenate(parts))

    def _check(self, y: np.ndarray, A: int, ka: int) -> bool:
        """Do the last remembered extremes still hold the same values in ``y``?"""
        if self._k1 == self._k0:
            return True
        i0 = ka - self._k0
        lo, hi = self._lo[i0:][-8:], self._hi[i0:][-8:]
        if not len(lo):
            return True
        if lo[0] - A < 0 or hi.max() - A >= len(y):
            return False
        return bool(
            np.array_equal(y[lo - A], self._lov[i0:][-8:], equal_nan=True)
            and np.array_equal(y[hi - A], self._hiv[i0:][-8:], equal_nan=True)
        )


def decimate(
    x: np.ndarray, y: np.ndarray, max_points: int, offset: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``(x[idx], y[idx])`` for ``idx = minmax_indices(y, max_points, offset)``.

    Example:
        >>> xs, ys = decimate(np.arange(10_000.0), np.random.default_rng(0).normal(size=10_000), 100)
        >>> len(xs) == len(ys) <= 100
        True
    """
    idx = minmax_indices(y, max_points, offset)
    return np.asarray(x)[idx], np.asarray(y)[idx]
