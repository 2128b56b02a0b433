"""Generation benchmark: per-sample latency of the generation paths against the reference scheme (no KV cache, the
whole prefix re-run every step), all in one process on the same random-weight SignMBarts, for the multihead /
flattened / parallel decoding schemes.

Arms (``GenerationConfig`` settings): ``reference`` (``use_cache=False``), ``dynamic`` (transformers' growing
cache through the stock decoder: the path before the static cache), ``static`` (:class:`StaticKVDecoder`, the
default), ``static_int8`` (dynamic int8 quantisation of the decoder's linear layers, CPU), ``static_bf16`` and, on
CUDA, ``static_fp16`` and ``static_cuda_graphs`` (``compile="reduce-overhead"``); ``--compile MODE`` adds a
``static_compiled`` arm. Reduced-precision arms report the fraction of greedy codes equal to the float32 codes
(random weights score codes nearly alike, so this is a worst case for near-ties).

Sizes: a demo-sized mBART (d_model 256, 3+3 layers, 8 k text tokens) and an mBART-large-cc25-sized one (d_model
1024, 12+12 layers, 16 heads, ffn 4096; the text vocabulary is reduced from 250 k to ``--large-vocab`` tokens, which
changes memory and build time only: the heads score the motion rows). Generation runs with ``stop_on="never"`` so
every arm decodes the same number of codes (``drop_finished`` therefore has nothing to drop here). Timings exclude
model building and are CPU seconds of this process on a CPU (one intra-op thread, so CPU seconds = the wall time on
an idle core; wall times on a shared machine swing with other processes' load) and wall seconds on a GPU. Every
ratio compares runs of this same process, interleaved on the same data.
"""

from __future__ import annotations

import argparse
import logging
import resource
import statistics
import time

import numpy as np
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


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def arms(device: torch.device, compile_mode: str | None) -> dict[str, dict]:
    """Arm name -> generate() keyword arguments."""
    out = {"reference": dict(use_cache=False, drop_finished=False),
           "dynamic": dict(cache="dynamic", drop_finished=False),
           "static": dict(cache="static")}
    if device.type == "cpu":
        out["static_int8"] = dict(cache="static", precision="int8")
        out["static_bf16"] = dict(cache="static", precision="bfloat16")
    else:
        out["static_bf16"] = dict(cache="static", precision="bfloat16")
        out["static_fp16"] = dict(cache="static", precision="float16")
        out["static_cuda_graphs"] = dict(cache="static", compile="reduce-overhead")
    if compile_mode:
        out["static_compiled"] = dict(cache="static", compile=compile_mode)
    return out


def _clock(device: torch.device) -> float:
    """CPU seconds of this process on a CPU run (other processes' load does not count), wall seconds on a GPU."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        return time.perf_counter()
    return time.process_time()


def _run(model, src, mask, tags, kw) -> tuple[float, object]:
    start = _clock(src.device)
    result = model.generate(src, mask, tags, stop_on="never", **kw)
    return _clock(src.device) - start, result


def reference_estimate(model, src, mask, max_codes: int, points: int) -> dict:
    """The reference scheme's time for ``max_codes`` steps, from ``points`` timed steps.

    Step t of the reference re-runs the stock decoder on the whole prefix of t positions (all rows, no cache). Here
    the decoder runs on prefixes of ``points`` lengths spread over 1..max_codes, and the per-step times are
    interpolated linearly and summed (plus one encoder pass): for when the full reference run does not fit the
    machine's time (an mBART-large-sized model at 100 codes on a shared 2-core CPU).
    """
    device = src.device
    decoder = model.mbart.model.decoder
    dim = model.mbart.config.d_model
    lengths = sorted({round(1 + i * (max_codes - 1) / max(1, points - 1)) for i in range(points)})
    with torch.no_grad():
        start = _clock(device)
        states = model.encode(src, mask)
        encode_s = _clock(device) - start
        seconds = []
        for n in lengths:
            embeds = torch.randn(src.shape[0], n, dim, device=device)
            start = _clock(device)
            decoder(inputs_embeds=embeds, encoder_hidden_states=states, encoder_attention_mask=mask, use_cache=False)
            seconds.append(_clock(device) - start)
    steps = torch.arange(1, max_codes + 1, dtype=torch.float64)
    per_step = torch.from_numpy(np.interp(steps.numpy(), lengths, seconds))
    return {"estimated_batch_latency_s": round(encode_s + float(per_step.sum()), 3), "timed_prefix_lengths": lengths,
            "timed_step_s": [round(t, 3) for t in seconds]}


def bench_config(name: str, max_codes: int, batch: int, prompt_tokens: int, repeats: int, device: torch.device,
                 schemes: list[str], arm_kwargs: dict[str, dict], vocab: int | None = None,
                 reference_points: int = 0) -> dict:
    config = dict(CONFIGS[name])
    if vocab:
        config["vocab_size"] = vocab
    out = {"max_codes": max_codes, "batch": batch, "prompt_tokens": prompt_tokens, "repeats": repeats,
           "text_vocab": config["vocab_size"], "runs": {}}
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
        for arm, kw in arm_kwargs.items():  # warm-up: allocator, kernels, compilation (not timed)
            if not (arm == "reference" and reference_points):
                model.generate(src, mask, tags, max_codes=2, stop_on="never", **kw)
        times = {arm: [] for arm in arm_kwargs}
        results = {}
        estimate = None
        for _ in range(repeats):  # interleaved: every arm sees the same load
            for arm, kw in arm_kwargs.items():
                if arm == "reference" and reference_points:
                    estimate = reference_estimate(model, src, mask, max_codes, reference_points)
                    times[arm].append(estimate["estimated_batch_latency_s"])
                    continue
                seconds, results[arm] = _run(model, src, mask, tags, dict(max_codes=max_codes, **kw))
                times[arm].append(seconds)
        exact = results["static"].codes
        runs = {}
        for arm in arm_kwargs:
            latency = statistics.median(times[arm])
            if arm not in results:
                runs[arm] = {"latency_s_per_sample": round(latency / batch, 4), "batch_latency_s": round(latency, 3),
                             "estimated_from": estimate}
                continue
            r = results[arm]
            runs[arm] = {"latency_s_per_sample": round(latency / batch, 4), "batch_latency_s": round(latency, 3),
                         "steps": r.steps, "ms_per_step": round(1000 * latency / r.steps, 2)}
            if r.codes.shape == exact.shape:
                runs[arm]["codes_equal_to_float32"] = round(float((r.codes == exact).float().mean()), 4)
        base = statistics.median(times["reference"])
        if "reference" in results and scheme == schemes[0]:  # how good the estimator used at mBART-large size is
            check = reference_estimate(model, src, mask, max_codes, 5)["estimated_batch_latency_s"]
            out["reference_estimate_over_measured"] = round(check / base, 3)
        out["runs"][scheme] = runs
        out.setdefault("speedup_per_sample_vs_reference", {})[scheme] = {
            arm: round(base / statistics.median(times[arm]), 2) for arm in arm_kwargs if arm != "reference"}
        out.setdefault("speedup_per_sample_vs_dynamic", {})[scheme] = {
            arm: round(statistics.median(times["dynamic"]) / statistics.median(times[arm]), 2)
            for arm in arm_kwargs if arm not in ("reference", "dynamic")}
        del model
    out["process_peak_rss_mb"] = round(_peak_rss_mb(), 1)
    return out


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="bench_generation", description=__doc__)
    parser.add_argument("--demo-codes", type=int, default=100)
    parser.add_argument("--demo-batch", type=int, default=8)
    parser.add_argument("--large-codes", type=int, default=100)
    parser.add_argument("--large-batch", type=int, default=8)
    parser.add_argument("--large-vocab", type=int, default=32000,
                        help="text vocabulary of the mBART-large-sized model (250027 is the real one; memory only)")
    parser.add_argument("--large-schemes", nargs="+", default=["multihead"])
    parser.add_argument("--large-arms", nargs="+", default=None,
                        help="arms timed at mBART-large size (default: all; 'reference' is always kept)")
    parser.add_argument("--large-reference-points", type=int, default=None,
                        help="> 0: estimate the mBART-large reference from this many timed prefix lengths instead "
                             "of running all its steps (a full run at 100 codes x batch 8 needs ~15 TFLOP: about "
                             "15 CPU-minutes); 0: run it. Default: 5 on CPU, 0 on GPU")
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2, help="median of this many runs (demo config)")
    parser.add_argument("--skip-large", action="store_true", help="only the demo-sized config")
    parser.add_argument("--compile", default=None, help="also time the static decoder compiled in this mode")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads; on a shared CPU 2 threads were 15x slower per step than 1 "
                             "(threads wait for each other), so 1 gives stable ratios")
    parser.add_argument("--schemes", nargs="+", default=["multihead", "flattened", "parallel"])
    args = parser.parse_args(argv)
    if args.large_reference_points is None:
        args.large_reference_points = 0 if args.device.startswith("cuda") else 5
    logging.getLogger("transformers").setLevel(logging.ERROR)
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    arm_kwargs = arms(device, args.compile)
    result = {"device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
              "torch_threads": torch.get_num_threads(), "arms": arm_kwargs,
              "configs": {"demo": bench_config("demo", args.demo_codes, args.demo_batch, args.prompt_tokens,
                                               args.repeats, device, args.schemes, arm_kwargs)}}
    if not args.skip_large:
        large_arms = {arm: kw for arm, kw in arm_kwargs.items()
                      if args.large_arms is None or arm in {"reference", "dynamic", "static", *args.large_arms}}
        result["configs"]["mbart_large"] = bench_config("mbart_large", args.large_codes, args.large_batch,
                                                        args.prompt_tokens, 1, device, args.large_schemes,
                                                        large_arms, vocab=args.large_vocab,
                                                        reference_points=args.large_reference_points)
    return result


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(main(sys.argv[1:]), indent=2))
