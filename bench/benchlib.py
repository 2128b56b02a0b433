"""Pieces several benchmarks share (not a benchmark itself: `bench/run.py` runs the ``bench_*.py`` files).

A benchmark imports it after putting its own folder on the path (the benchmarks are also loaded by file path):

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from benchlib import best_of
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numba
import numpy as np

from soke_lightning.metrics.functional.alignment import qcp_similarity


def best_of(repeats: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    """The fastest of ``repeats`` wall-clock runs of ``fn`` (seconds) and the last run's result."""
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


@numba.njit(parallel=True, cache=True)
def per_cell_pa_dtw(xf, yf, gy, xe, ye, lp, lt, out):  # pragma: no cover - compiled
    """DTW-PA-JPE the straightforward way: per (prediction frame, target frame) cell the covariance of the fit
    joints, one scalar QCP solve and the evaluated joints' mean error, then the DTW recursion; parallel over pairs.

    The same-run baseline of the library's row solver, on the same inputs
    (:func:`soke_lightning.metrics.functional.dtw.procrustes_arrays`): xf [B, Tp, K, 3], yf [B, K, 3, Tt], gy [B, Tt],
    xe [B, Tp, E, 3], ye [B, E, 3, Tt]; ``out[p]`` = accumulated cost of pair p.
    """
    for p in numba.prange(xf.shape[0]):
        n, m = lp[p], lt[p]
        nk, ne = xf.shape[2], xe.shape[2]
        prev = np.empty(m)
        cur = np.empty(m)
        row = np.empty(m)
        for i in range(n):
            gx = 0.0
            for k in range(nk):
                gx += xf[p, i, k, 0] ** 2 + xf[p, i, k, 1] ** 2 + xf[p, i, k, 2] ** 2
            for j in range(m):
                s = np.zeros(9)
                for k in range(nk):
                    for c in range(3):
                        for a in range(3):
                            s[3 * c + a] += xf[p, i, k, c] * yf[p, k, a, j]
                r = qcp_similarity(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8], gx, gy[p, j])
                err = 0.0
                for k in range(ne):
                    x0, x1, x2 = xe[p, i, k, 0], xe[p, i, k, 1], xe[p, i, k, 2]
                    d0 = r[9] * (r[0] * x0 + r[1] * x1 + r[2] * x2) - ye[p, k, 0, j]
                    d1 = r[9] * (r[3] * x0 + r[4] * x1 + r[5] * x2) - ye[p, k, 1, j]
                    d2 = r[9] * (r[6] * x0 + r[7] * x1 + r[8] * x2) - ye[p, k, 2, j]
                    err += np.sqrt(d0 * d0 + d1 * d1 + d2 * d2)
                row[j] = err / ne
            if i == 0:
                acc = 0.0
                for j in range(m):
                    acc += row[j]
                    cur[j] = acc
            else:
                cur[0] = prev[0] + row[0]
                for j in range(1, m):
                    cur[j] = row[j] + min(prev[j - 1], prev[j], cur[j - 1])
            prev, cur = cur, prev
        out[p] = prev[m - 1]
