"""Generation benchmark: per-sample latency and decoder steps of multihead / flattened / parallel decoding, and
KV-cached decoding vs re-running the whole prefix every step (the reference), on random-weight SignMBarts.

Two sizes: a demo-sized mBART (d_model 256, 3+3 layers, 8 k text tokens) generating ``--demo-codes`` codes, and
an mBART-large-cc25-sized one (d_model 1024, 12+12 layers, 250 k text tokens, ~610 M parameters) generating only
``--large-codes`` codes at batch 1 (a shared 2-core CPU cannot time 100 steps of it in reasonable time).
Generation runs with ``stop_on="never"`` so every scheme decodes the same number of codes; timings exclude model
building. Memory: the KV cache size after the run (computed from its shapes), the process's peak RSS after each
config (model included), and on CUDA ``max_memory_allocated`` above the model. Every ratio compares runs of this
same process; on a shared CPU, other processes' load makes absolute times noisy (rerun, compare ratios).
"""

from __future__ import annotations

import argparse
import logging
import resource
import statistics
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


def _kv_cache_mb(model, rows: int, steps: int, prompt_tokens: int) -> float:
    """Size of the decoder KV cache after ``steps`` steps: keys + values of self- and cross-attention, all layers."""
    config = model.mbart.config
    dtype_bytes = next(model.parameters()).element_size()
    return 2 * config.decoder_layers * rows * (steps + prompt_tokens) * config.d_model * dtype_bytes / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _time(model, src, mask, tags, repeats, **kw) -> dict:
    device = src.device
    times, result = [], None
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    for _ in range(repeats):
        start = time.perf_counter()
        result = model.generate(src, mask, tags, stop_on="never", **kw)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    latency = statistics.median(times)
    rows = src.shape[0] * (len(PARTS) if model.decoding == "parallel" else 1)
    out = {"latency_s_per_sample": round(latency / src.shape[0], 4), "batch_latency_s": round(latency, 4),
           "steps": result.steps, "ms_per_step": round(1000 * latency / result.steps, 2),
           "codes": int(result.codes.shape[1])}
    if kw.get("use_cache"):
        out["kv_cache_mb"] = round(_kv_cache_mb(model, rows, result.steps, src.shape[1]), 2)
    if device.type == "cuda":
        out["cuda_peak_extra_mb"] = round((torch.cuda.max_memory_allocated() - base) / 2**20, 1)
    return out


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
    out["process_peak_rss_mb"] = round(_peak_rss_mb(), 1)
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
    parser.add_argument("--repeats", type=int, default=2, help="median of this many runs (demo config)")
    parser.add_argument("--skip-large", action="store_true", help="only the demo-sized config")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads; on a shared CPU 2 threads were 15x slower per step than 1 "
                             "(threads wait for each other), so 1 gives stable ratios")
    parser.add_argument("--schemes", nargs="+", default=["multihead", "flattened", "parallel"])
    args = parser.parse_args(argv)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
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
