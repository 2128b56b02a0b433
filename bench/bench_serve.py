"""`soke serve` load check: 20 requests from 4 concurrent ``gradio_client`` clients against one served checkpoint.

The server is `soke serve` in a subprocess (one model, one request at a time, a bounded queue). Each client sends
its share of 20 different sentences (so the result cache is not hit) through the page's ``/sign`` endpoint and
times each round trip (request, queue, generation with its files, answer; the clients do not download the files,
so the numbers are the server's and not the client's disk). Baseline in the same run: the same kind of request sent by one client at a time (no
waiting in the queue), so ``median_ratio`` is what four concurrent users cost each other. Also reported: the
server's peak resident memory (``VmHWM`` of its process, read from /proc after the load), how many requests failed
and one cached repeat.

    python bench/bench_serve.py --ckpt outputs/stage2-demo/checkpoints/last.ckpt --store data/synthsign-demo
    python bench/bench_serve.py          (no --ckpt: trains the tiny debug stage 1 + 2 first, about a minute)
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = {
    "asl": ["The teacher is happy.", "They read ten maps.", "On Monday the elephant will fall.",
            "What will they have next year?", "They are young.", "Does Sophie like Milan now?",
            "They moved to Leipzig.", "When does Julia fly to Bangkok?", "They do not drive to the village."],
    "csl": ["妻子读报纸吗？", "岛很坏。", "星期一我会旅行到德累斯顿。", "软猫旅行到哪里？", "下个月妻子不会读报纸。",
            "硬小偷旅行到哪里？", "妻子不读报纸。", "老师很高兴。", "星期一大象会摔倒。"],
    "dgs": ["Der Onkel fängt den Fisch.", "Wie viele Regale sehen wir?", "Paul fängt den Fisch.",
            "Wer wird nächstes Jahr den Ball werfen?", "Letzten Monat hat die Spinne geschrien.",
            "Letzten Monat haben wir das Kaninchen gefangen.", "Der Lehrer ist glücklich.",
            "Am Montag wird der Elefant fallen."],
}


def _soke(*argv: str, env: dict | None = None) -> None:
    subprocess.run([sys.executable, "-m", "soke_lightning.cli", *argv], check=True, env=env,
                   stdout=subprocess.DEVNULL)


def tiny_checkpoint(root: Path) -> tuple[Path, Path]:
    """Train the tiny debug pipeline (SynthSign tiny store -> stage 1 -> token cache -> stage 2); (ckpt, store)."""
    env = {**os.environ, "SOKE_OUT": str(root / "out"), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled",
           "OMP_NUM_THREADS": "1"}
    store = root / "tiny"
    _soke("synth", "--out", str(store), "--preset", "tiny", env=env)
    data = ["--data", str(ROOT / "datamodules/synthsign.yaml"), "--data.init_args.stores", f"[{store}]",
            "--data.init_args.batch_size", "8"]
    _soke("fit", "--config", str(ROOT / "experiments/stage1/debug.yaml"), *data, "--trainer.max_epochs", "1", env=env)
    stage1 = root / "out" / "stage1-debug" / "checkpoints" / "last.ckpt"
    _soke("encode", "--tokenizer", str(stage1), "--data", str(ROOT / "datamodules/synthsign.yaml"), "--out",
          str(root / "tokens"), "--splits", "train", "val", "test", "--set", f"init_args.stores=[{store}]", env=env)
    _soke("fit", "--config", str(ROOT / "experiments/stage2/debug.yaml"), *data, "--data.init_args.token_cache",
          str(root / "tokens"), "--model.init_args.tokenizer_ckpt", str(stage1), env=env)
    return root / "out" / "stage2-debug" / "checkpoints" / "last.ckpt", store


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(ckpt: Path, store: Path | None, port: int, log_path: Path, queue_size: int = 32):
    """`soke serve` in a subprocess; returns (process, url) once the page answers (or raises with its log)."""
    import urllib.request

    argv = [sys.executable, "-m", "soke_lightning.cli", "serve", "--ckpt", str(ckpt), "--port", str(port),
            "--queue-size", str(queue_size)]
    if store is not None:
        argv += ["--store", str(store)]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    log = log_path.open("w")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"soke serve exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"soke serve did not answer on {url} within 180 s:\n{log_path.read_text()[-3000:]}")


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size (VmHWM) of a live process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/{pid}/status has no VmHWM")


def _request(client, text: str, lang: str) -> float:
    start = time.perf_counter()
    client.predict(text, lang, False, False, "greedy", 1.0, 0, 1.0, 0, api_name="/sign")
    return time.perf_counter() - start


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ckpt", default=None, help="stage-2 checkpoint (default: train the tiny debug one)")
    parser.add_argument("--store", default=None, help="store with a dictionary split (examples, comparison)")
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--langs", nargs="+", default=["asl", "csl", "dgs"])
    args = parser.parse_args(argv)
    from gradio_client import Client

    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        tmp = Path(tmp)
        trained = args.ckpt is None
        if trained:
            ckpt, store = tiny_checkpoint(tmp)
        else:
            ckpt, store = Path(args.ckpt), Path(args.store) if args.store else None
        pool = [(t, lang) for lang in args.langs for t in SENTENCES[lang]]
        if len(pool) < args.requests + 3:
            raise SystemExit(f"bench_serve: {len(pool)} distinct sentences for {args.langs}, need "
                             f"{args.requests + 3}: add languages")
        proc, url = start_server(ckpt, store, free_port(), tmp / "serve.log")
        try:
            warm = Client(url, verbose=False, download_files=False)
            first = _request(warm, *pool[0])  # first request: lazy initialisation, excluded from the numbers
            baseline = [_request(warm, *pool[1 + i]) for i in range(2)]
            load = pool[3:3 + args.requests]
            latencies: list[float] = []
            failures: list[str] = []
            lock = threading.Lock()

            def client_loop(items):
                client = Client(url, verbose=False, download_files=False)
                for text, lang in items:
                    try:
                        seconds = _request(client, text, lang)
                        with lock:
                            latencies.append(seconds)
                    except Exception as err:  # noqa: BLE001 - every failure is counted and reported
                        with lock:
                            failures.append(f"{lang} {text!r}: {type(err).__name__}: {err}")

            start = time.perf_counter()
            threads = [threading.Thread(target=client_loop, args=(load[i::args.clients],))
                       for i in range(args.clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - start
            cached = _request(warm, *load[0])
            peak = peak_rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    median = statistics.median(latencies) if latencies else float("nan")
    base = statistics.median(baseline)
    return {
        "checkpoint": "tiny debug (trained here)" if trained else str(ckpt),
        "requests": args.requests, "clients": args.clients, "succeeded": len(latencies), "failed": len(failures),
        "failures": failures[:5],
        "first_request_s": round(first, 3),
        "baseline_one_client_median_s": round(base, 3),
        "median_latency_s": round(median, 3),
        "worst_latency_s": round(max(latencies), 3) if latencies else None,
        "median_ratio_vs_one_client": round(median / base, 2),
        "throughput_per_s": round(len(latencies) / wall, 3),
        "cached_repeat_s": round(cached, 3),
        "server_peak_rss_mb": round(peak, 1),
    }


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    print(json.dumps(main(sys.argv[1:]), indent=2, ensure_ascii=False))
