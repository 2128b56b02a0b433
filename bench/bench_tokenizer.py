"""Stage-1 tokenizer benchmark (CPU): training-step throughput and peak memory, encode throughput.

Cases (each in its own subprocess, so the peak RSS is that case's alone):

* the paper-size BODY VQ-VAE (width 512, 43 features, 96 codes) training step (forward + backward + AdamW) on
  batches [32, 64, 43] and [8, 200, 43]; with our quantizer (random reset, padding masked) and, as the baseline
  measured in the same run, with the reference's quantizer behaviour (first-K reset, padding included);
* the demo tokenizer (experiments/stage1/demo.yaml sizes, 3 parts) training step on [16, 128, 133];
* encode throughput (no grad) of the paper-size 3-part tokenizer and of the demo tokenizer on [32, 128, 133].

Reported: median seconds per step, frames per second, peak RSS (MB) of the case process and its increase over
building the model alone, and the ratio ours / reference-behaviour. ``python bench/run.py tokenizer``.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAPER = dict(width=512, code_dim=512, depth=3)
DEMO = dict(width=48, code_dim=48, depth=2)
CODEBOOKS = {"body": 96, "lhand": 192, "rhand": 192}


def _case(spec: dict) -> dict:
    """Runs inside the child process."""
    import torch

    from soke_lightning.models.tokenizer import SignTokenizer
    from soke_lightning.models.vqvae import VQVAE, VQVAEConfig

    torch.manual_seed(0)
    b, t, d = spec["shape"]
    if spec["model"] == "body":
        model = VQVAE(VQVAEConfig(in_dim=43, codebook_size=96, reset=spec.get("reset", "random"),
                                  mask_padding=spec.get("mask_padding", True), **PAPER))
    else:
        sizes = PAPER if spec["model"] == "paper3" else DEMO
        model = SignTokenizer(codebook_sizes=CODEBOOKS, **sizes)
    x = torch.randn(b, t, d)
    lengths = torch.full((b,), t)
    lengths[-1] = t - 8  # one padded sample, so the masking path is exercised
    rss_model = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times = []
    if spec["mode"] == "train":
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        for i in range(spec["steps"] + 1):
            start = time.perf_counter()
            out = model(x, lengths)
            loss = torch.nn.functional.smooth_l1_loss(out.recon, x)
            loss = loss + 0.02 * (out.quant.commit_loss if hasattr(out, "quant") else out.commit_loss)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if i:  # the first step pays one-off allocations and the codebook initialisation
                times.append(time.perf_counter() - start)
    else:
        model.eval()
        model.train(False)
        for i in range(spec["steps"] + 1):
            start = time.perf_counter()
            model.encode(x, lengths)
            if i:
                times.append(time.perf_counter() - start)
    med = statistics.median(times)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"name": spec["name"], "shape": [b, t, d], "seconds_per_step": round(med, 4),
            "frames_per_s": round(b * t / med, 1), "peak_rss_mb": round(rss, 1),
            "peak_rss_over_model_mb": round(rss - rss_model, 1), "threads": torch.get_num_threads()}


def _run_child(spec: dict) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, __file__, json.dumps(spec)], capture_output=True, text=True, env=env,
                          timeout=900)
    if proc.returncode:
        raise RuntimeError(f"benchmark case {spec['name']} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> dict:
    steps = int(argv[0]) if argv else 5
    specs = []
    for shape in ([32, 64, 43], [8, 200, 43]):
        tag = "x".join(map(str, shape))
        specs.append(dict(name=f"paper_body_train_{tag}", model="body", mode="train", shape=shape, steps=steps))
        specs.append(dict(name=f"paper_body_train_{tag}_reference_quantizer", model="body", mode="train",
                          shape=shape, steps=steps, reset="first", mask_padding=False))
    specs.append(dict(name="demo_train_16x128x133", model="demo3", mode="train", shape=[16, 128, 133], steps=steps))
    specs.append(dict(name="paper_encode_32x128x133", model="paper3", mode="encode", shape=[32, 128, 133],
                      steps=steps))
    specs.append(dict(name="demo_encode_32x128x133", model="demo3", mode="encode", shape=[32, 128, 133],
                      steps=steps))
    cases = {s["name"]: _run_child(s) for s in specs}
    ratios = {}
    for shape in ("32x64x43", "8x200x43"):
        ours = cases[f"paper_body_train_{shape}"]["frames_per_s"]
        ref = cases[f"paper_body_train_{shape}_reference_quantizer"]["frames_per_s"]
        ratios[f"paper_body_train_{shape}_ours_over_reference_quantizer"] = round(ours / ref, 3)
    ratios["demo_over_paper_encode_throughput"] = round(
        cases["demo_encode_32x128x133"]["frames_per_s"] / cases["paper_encode_32x128x133"]["frames_per_s"], 2)
    return {"device": "cpu", "cpu_count": os.cpu_count(), "steps_timed": steps, "cases": cases, "ratios": ratios,
            "note": "docs/faithfulness.md §12: the reference body VQ-VAE forward+backward on [32,64,43] took 0.6 s on a "
                    "2-core CPU (no optimizer step)."}


if __name__ == "__main__":
    if len(sys.argv) == 2 and sys.argv[1].startswith("{"):
        print(json.dumps(_case(json.loads(sys.argv[1]))))
    else:
        print(json.dumps(main(sys.argv[1:]), indent=2))
