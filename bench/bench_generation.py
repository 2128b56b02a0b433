"""Generation benchmark: per-sample latency and decoder steps of multihead / flattened / parallel decoding, and
KV-cached decoding vs re-running the whole prefix every step (the reference), on random-weight SignMBarts.

Two sizes: a demo-sized mBART (d_model 256, 3+3 layers, 8 k text tokens) generating ``--demo-codes`` codes, and
an mBART-large-cc25-sized one (d_model 1024, 12+12 layers, 250 k text tokens, ~610 M parameters) generating only
``--large-codes`` codes at batch 1 (a shared 2-core CPU cannot time 100 steps of it in reasonable time).
Generation runs with ``stop_on="never"`` so every scheme decodes the same number of codes; timings exclude model
building. Memory: on CPU the peak resident-set growth during one generation call (sampled every 2 ms), on CUDA
``max_memory_allocated`` above the model. Every ratio compares runs of this same process.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import threading
import time

import torch

from soke_lightning.models.sign_mbart import SignMBart

PARTS, SIZES, TAGS = ["body", "lhand", "rhand"], [96, 192, 192], ["en_ASL", "zh_CSL", "de_DGS"]
CONFIGS = {
    "demo": dict(vocab_size=8000, d_model=256, encoder_layers=3, decoder_layers=3, encoder_attention_heads=4,
                 decoder_attention_heads=4, encoder_ffn_dim=1024, decoder_ffn_dim=1024, max_position_embeddings=512,
                 scale_embedding=True),
    "mbart_large": dict(vocab_size=250027, d_model=1024, encoder_layers=12, decoder_layers=12,
                        encoder_attention_heads=16, decoder_attention_heads=16, encoder_ffn_dim=4096,
                        decoder_ffn_dim=4096, max_position_embeddings=1024, scale_embedding=True),
}


class _PeakMemory:
    """Peak memory growth (MB) while the block runs: CUDA allocator peak, or sampled RSS on CPU."""

    def __init__(self, device: torch.device):
        self.device, self.peak_mb = device, 0.0

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
            return self
        self._base = self._peak = self._rss()
        self._stop = threading.Event()

        def sample():
            while not self._stop.wait(0.002):
                self._peak = max(self._peak, self._rss())

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak_mb = (torch.cuda.max_memory_allocated() - self._base) / 2**20
        else:
            self._stop.set()
            self._thread.join()
            self._peak = max(self._peak, self._rss())
            self.peak_mb = (self._peak - self._base) / 2**20


def _time(model, src, mask, tags, repeats, **kw) -> dict:
    device = src.device
    times, result, peak = [], None, 0.0
    for _ in range(repeats):
        with _PeakMemory(device) as mem:
            start = time.perf_counter()
            result = model.generate(src, mask, tags, stop_on="never", **kw)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        peak = max(peak, mem.peak_mb)
    latency = statistics.median(times)
    return {"latency_s_per_sample": round(latency / src.shape[0], 4), "batch_latency_s": round(latency, 4),
            "steps": result.steps, "ms_per_step": round(1000 * latency / result.steps, 2),
            "peak_extra_mb": round(peak, 1), "codes": int(result.codes.shape[1])}


def bench_config(name: str, max_codes: int, batch: int, prompt_tokens: int, repeats: int, device: torch.device,
                 schemes: list[str]) -> dict:
    config = CONFIGS[name]
    out = {"max_codes": max_codes, "batch": batch, "prompt_tokens": prompt_tokens, "repeats": repeats, "runs": {}}
    gen = torch.Generator().manual_seed(0)
    src = torch.randint(4, config["vocab_size"] - 30, (batch, prompt_tokens), generator=gen).to(device)
    src[:, -2] = 2  # </s>, then a source-language code position
    mask = torch.ones_like(src)
    tags = ["en_ASL"] * batch
    for scheme in schemes:
        start = time.perf_counter()
        torch.manual_seed(0)
        model = SignMBart(PARTS, SIZES, TAGS, config, decoding=scheme, mean_resizing=False).to(device).eval()
        out.setdefault("build_s", round(time.perf_counter() - start, 1))
        out["params_m"] = round(sum(p.numel() for p in model.parameters()) / 1e6, 1)
        model.generate(src, mask, tags, max_codes=1)  # warm-up (allocator, kernels)
        runs = {"kv": _time(model, src, mask, tags, repeats, max_codes=max_codes, use_cache=True),
                "no_kv": _time(model, src, mask, tags, repeats, max_codes=max_codes, use_cache=False)}
        runs["kv_speedup"] = round(runs["no_kv"]["batch_latency_s"] / runs["kv"]["batch_latency_s"], 2)
        out["runs"][scheme] = runs
        del model
    runs = out["runs"]
    if "multihead" in runs:
        base = runs["multihead"]["kv"]
        out["ratios_vs_multihead_kv"] = {
            f"{scheme}_{mode}": {"steps": round(r[mode]["steps"] / base["steps"], 2),
                                 "latency": round(r[mode]["batch_latency_s"] / base["batch_latency_s"], 2)}
            for scheme, r in runs.items() for mode in ("kv", "no_kv")}
    return out


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="bench_generation", description=__doc__)
    parser.add_argument("--demo-codes", type=int, default=100)
    parser.add_argument("--demo-batch", type=int, default=1)
    parser.add_argument("--large-codes", type=int, default=8)
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="median of this many runs (demo config)")
    parser.add_argument("--skip-large", action="store_true", help="only the demo-sized config")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--schemes", nargs="+", default=["multihead", "flattened", "parallel"])
    args = parser.parse_args(argv)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    device = torch.device(args.device)
    result = {"device": str(device), "torch_threads": torch.get_num_threads(),
              "configs": {"demo": bench_config("demo", args.demo_codes, args.demo_batch, args.prompt_tokens,
                                               args.repeats, device, args.schemes)}}
    if args.demo_batch == 1:
        batched = bench_config("demo", args.demo_codes, 8, args.prompt_tokens, 1, device, ["multihead"])
        result["configs"]["demo_batch8_multihead"] = batched
    if not args.skip_large:
        result["configs"]["mbart_large"] = bench_config("mbart_large", args.large_codes, 1, args.prompt_tokens, 1,
                                                        device, args.schemes)
    return result


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(main(sys.argv[1:]), indent=2))
