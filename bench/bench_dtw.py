"""DTW benchmark: our batched DTW-JPE / DTW-PA-JPE against the reference's kind of Python loop, tslearn and a
straightforward numba loop, all in one run on the same data.

Data: 1000 (prediction, target) pairs of smooth random joint trajectories, lengths 150-250, three parts as in
SOKE's evaluation: body 12 joints, left hand 21, right hand 21 (metres). Timings exclude numba compilation
(reported separately). The Python loops are timed on a few pairs and extrapolated to all 3 x 1000 pair-parts.
``python bench/run.py dtw`` prints the JSON; ``main(["--pairs", "200"])`` runs a smaller set.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numba
import numpy as np
import torch

from soke_lightning.metrics.functional import dtw_from_cost, dtw_joint_error, pairwise_frame_cost
from soke_lightning.metrics.functional.dtw import procrustes_arrays

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchlib: shared benchmark pieces
from benchlib import per_cell_pa_dtw  # noqa: E402

PARTS = {"body": 12, "lhand": 21, "rhand": 21}


def make_data(pairs: int, seed: int = 0):
    """Smooth random-walk joint trajectories: {part: (pred [B, 250, J, 3], target, lp, lt)} (float32)."""
    gen = torch.Generator().manual_seed(seed)
    lp = torch.randint(150, 251, (pairs,), generator=gen)
    lt = torch.randint(150, 251, (pairs,), generator=gen)
    data = {}
    for part, nj in PARTS.items():
        rest = torch.randn(pairs, 1, nj, 3, generator=gen) * 0.1
        pred, target = (rest + torch.cumsum(torch.randn(pairs, 250, nj, 3, generator=gen) * 0.003, 1)
                        for _ in range(2))
        data[part] = (pred.float(), target.float(), lp, lt)
    return data


def _umeyama(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x aligned onto y by a similarity transform (one numpy SVD, reflection fixed)."""
    mx, my = x.mean(0), y.mean(0)
    xc, yc = x - mx, y - my
    u, s, vt = np.linalg.svd(yc.T @ xc)
    d = np.sign(np.linalg.det(u @ vt))
    rot = u @ np.diag([1.0, 1.0, d]) @ vt
    scale = (s[0] + s[1] + d * s[2]) / (xc**2).sum()
    return scale * xc @ rot.T + my


def python_loop_dtw(pred: np.ndarray, target: np.ndarray, procrustes: bool) -> float:
    """The reference's kind: a Python double loop, one numpy frame distance (or one SVD) per cell."""
    n, m = len(pred), len(target)
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            x, y = pred[i - 1], target[j - 1]
            if procrustes:
                x = _umeyama(x, y)
            else:
                x, y = x - x[0], y - y[0]
            cost = np.linalg.norm(x - y, axis=-1).mean()
            acc[i, j] = cost + min(acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1])
    return float(acc[n, m])


@numba.njit(cache=True)
def naive_numba_dtw(pred, target):  # pragma: no cover - compiled
    """The obvious numba loop: full matrix, per-cell joint loop, one pair at a time, root-aligned."""
    n, m, nj = pred.shape[0], target.shape[0], pred.shape[1]
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost = 0.0
            for k in range(nj):
                d = 0.0
                for c in range(3):
                    diff = (pred[i - 1, k, c] - pred[i - 1, 0, c]) - (target[j - 1, k, c] - target[j - 1, 0, c])
                    d += diff * diff
                cost += np.sqrt(d)
            acc[i, j] = cost / nj + min(acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1])
    return acc[n, m]


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _cpu_timed(fn):
    """(result, wall seconds, CPU seconds of all threads): the CPU time tells what the wall time would be on idle
    cores when the machine is shared (wall ≈ CPU / cores for our parallel kernels)."""
    cpu = time.process_time()
    out, wall = _timed(fn)
    return out, wall, time.process_time() - cpu


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="bench_dtw")
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--loop-pairs", type=int, default=2, help="pairs the Python loops are timed on")
    args = parser.parse_args(argv)
    data = make_data(args.pairs)
    total_pair_parts = args.pairs * len(PARTS)

    # compile (or load the cached kernels) once, outside the timings
    tiny = torch.randn(2, 5, 4, 3)
    _, compile_s = _timed(lambda: (dtw_joint_error(tiny, tiny), dtw_joint_error(tiny, tiny, align="procrustes"),
                                   naive_numba_dtw(tiny[0].double().numpy(), tiny[1].double().numpy())))

    def ours(align):
        return {p: dtw_joint_error(x, y, lp, lt, align=align, eval_joints=None) for p, (x, y, lp, lt) in data.items()}

    load_before = os.getloadavg()[0]
    jpe, jpe_s, jpe_cpu = _cpu_timed(lambda: ours("root"))
    pa, pa_s, pa_cpu = _cpu_timed(lambda: ours("procrustes"))

    # the straightforward per-cell kernel (one scalar QCP per cell), same data, same process
    small = {p: (x[:2], y[:2], lp[:2], lt[:2]) for p, (x, y, lp, lt) in data.items()}
    for x, y, lp, lt in small.values():  # compile / load the cache outside the timing
        per_cell_pa_dtw(*procrustes_arrays(x, y), lp.numpy(), lt.numpy(), np.empty(2))

    def run_scalar():
        out = {}
        for p, (x, y, lp, lt) in data.items():
            out[p] = np.empty(len(lp))
            per_cell_pa_dtw(*procrustes_arrays(x, y), lp.numpy(), lt.numpy(), out[p])
        return out

    scalar, scalar_s, scalar_cpu = _cpu_timed(run_scalar)
    scalar_rel = max(float(np.abs(scalar[p] / pa[p].numpy() - 1).max()) for p in PARTS)

    # DP alone on precomputed costs: ours vs tslearn
    costs = {p: pairwise_frame_cost(x, y, align="root", pred_lengths=lp, target_lengths=lt)
             for p, (x, y, lp, lt) in data.items()}
    _, dp_s = _timed(lambda: [dtw_from_cost(c, data[p][2], data[p][3]) for p, c in costs.items()])
    result_tslearn = {}
    try:
        from tslearn.metrics import dtw_path_from_metric

        def run_tslearn():
            out = {}
            for p, c in costs.items():
                lp, lt = data[p][2], data[p][3]
                out[p] = [dtw_path_from_metric(c[b, : lp[b], : lt[b]].numpy(), metric="precomputed")[1]
                          for b in range(args.pairs)]
            return out

        dtw_path_from_metric(np.zeros((2, 2)), metric="precomputed")  # compile
        ts, ts_s = _timed(run_tslearn)
        ts_diff = max(float(np.abs(np.asarray(ts[p]) - jpe[p].numpy()).max()) for p in PARTS)
        result_tslearn = {"tslearn_dp_s": round(ts_s, 3), "tslearn_vs_ours_max_abs_diff": ts_diff,
                          "tslearn_dp_over_ours_dp": round(ts_s / dp_s, 1)}
    except ImportError:
        result_tslearn = {"tslearn": "not installed"}

    # naive numba loop over every pair-part
    def run_naive():
        return {p: np.array([naive_numba_dtw(x[b, : lp[b]].double().numpy(), y[b, : lt[b]].double().numpy())
                             for b in range(args.pairs)]) for p, (x, y, lp, lt) in data.items()}

    naive, naive_s = _timed(run_naive)
    naive_diff = max(float(np.abs(naive[p] - jpe[p].numpy()).max()) for p in PARTS)

    # the reference's Python loops on a few pairs (one part each), extrapolated
    k = args.loop_pairs
    hand = data["lhand"]
    loop_vals, loop_s = _timed(lambda: [python_loop_dtw(hand[0][b, : hand[2][b]].double().numpy(),
                                                        hand[1][b, : hand[3][b]].double().numpy(), False)
                                        for b in range(k)])
    loop_diff = float(np.abs(np.asarray(loop_vals) - jpe["lhand"][:k].numpy()).max())
    pa_loop_vals, pa_loop_s = _timed(lambda: [python_loop_dtw(hand[0][0, : hand[2][0]].double().numpy(),
                                                              hand[1][0, : hand[3][0]].double().numpy(), True)])
    pa_loop_diff = abs(pa_loop_vals[0] - pa["lhand"][0].item())
    loop_total = loop_s / k * total_pair_parts
    pa_loop_total = pa_loop_s * total_pair_parts

    result = {
        "pairs": args.pairs,
        "parts": PARTS,
        "lengths": "150-250",
        "torch_threads": torch.get_num_threads(),
        "numba_threads": numba.get_num_threads(),
        "compile_or_cache_load_s": round(compile_s, 2),
        "cpu_cores": os.cpu_count(),
        "load_average_1min_before": round(load_before, 2),
        "ours_cpu": {"dtw_jpe_all_parts_s": round(jpe_s, 3), "dtw_pa_jpe_all_parts_s": round(pa_s, 3),
                     "dtw_jpe_cpu_s": round(jpe_cpu, 3), "dtw_pa_jpe_cpu_s": round(pa_cpu, 3),
                     "dp_only_all_parts_s": round(dp_s, 3)},
        # wall-clock targets on 2 cores; on a shared machine compare CPU seconds / 2 as well
        "targets": {"dtw_jpe_le_1s": jpe_s <= 1.0, "dtw_pa_jpe_le_5s": pa_s <= 5.0,
                    "dtw_jpe_cpu_per_2_cores_le_1s": jpe_cpu / 2 <= 1.0,
                    "dtw_pa_jpe_cpu_per_2_cores_le_5s": pa_cpu / 2 <= 5.0},
        "python_loop": {"dtw_jpe_extrapolated_s": round(loop_total, 1), "timed_pairs": k,
                        "dtw_pa_jpe_extrapolated_s": round(pa_loop_total, 1), "pa_timed_pairs": 1,
                        "max_abs_diff_vs_ours": max(loop_diff, pa_loop_diff)},
        "naive_numba": {"dtw_jpe_all_parts_s": round(naive_s, 3), "max_abs_diff_vs_ours": naive_diff},
        "scalar_qcp_per_cell": {"dtw_pa_jpe_all_parts_s": round(scalar_s, 3), "dtw_pa_jpe_cpu_s": round(scalar_cpu, 3),
                                "max_rel_diff_vs_ours": scalar_rel},
        **result_tslearn,
        "ratios": {
            "python_loop_over_ours_dtw_jpe": round(loop_total / jpe_s, 1),
            "python_loop_over_ours_dtw_pa_jpe": round(pa_loop_total / pa_s, 1),
            "naive_numba_over_ours_dtw_jpe": round(naive_s / jpe_s, 2),
            "scalar_qcp_over_ours_dtw_pa_jpe": round(scalar_s / pa_s, 2),
            "scalar_qcp_over_ours_dtw_pa_jpe_cpu": round(scalar_cpu / pa_cpu, 2),
        },
    }
    if torch.cuda.is_available():
        gpu = {p: tuple(t.cuda() if torch.is_tensor(t) else t for t in v) for p, v in data.items()}

        def on_gpu(align):
            out = {p: dtw_joint_error(x, y, lp, lt, align=align) for p, (x, y, lp, lt) in gpu.items()}
            torch.cuda.synchronize()
            return out

        on_gpu("root")
        g_jpe, g_jpe_s = _timed(lambda: on_gpu("root"))
        g_pa, g_pa_s = _timed(lambda: on_gpu("procrustes"))
        result["ours_gpu"] = {
            "device": torch.cuda.get_device_name(), "dtw_jpe_all_parts_s": round(g_jpe_s, 3),
            "dtw_pa_jpe_all_parts_s": round(g_pa_s, 3),
            "max_abs_diff_vs_cpu": max(float((g_jpe[p].cpu() - jpe[p]).abs().max()) for p in PARTS),
            "pa_max_abs_diff_vs_cpu": max(float((g_pa[p].cpu() - pa[p]).abs().max()) for p in PARTS),
        }
    return result


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(main(sys.argv[1:]), indent=2))
