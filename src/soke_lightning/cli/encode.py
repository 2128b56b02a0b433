"""`soke encode`: export every sample's tokenizer codes into a token cache for stage 2.

    soke encode --tokenizer outputs/stage1-demo/checkpoints/last.ckpt --data datamodules/synthsign.yaml \\
                --out outputs/tokens-demo [--splits train val test dictionary] [--set init_args.stores=[DIR]]

Samples go through the DataModule's own temporal processing, so the codes line up with the motion the tokenizer
was trained on (L = T / 4); "dictionary" is encoded when the stores have it. See
:mod:`soke_lightning.pipelines.encode`.
"""

from __future__ import annotations

import argparse

import torch

from soke_lightning.cli.lightning import build_datamodule
from soke_lightning.data.datamodule import DEFAULT_SPLITS
from soke_lightning.pipelines.encode import encode_to_cache


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tokenizer", required=True, help="tokenizer checkpoint (stage-1 .ckpt or import-official)")
    parser.add_argument("--data", required=True, help="datamodule YAML (class_path + init_args), e.g. "
                        "datamodules/synthsign.yaml")
    parser.add_argument("--out", required=True, help="token cache directory to write")
    parser.add_argument("--splits", nargs="+", default=list(DEFAULT_SPLITS),
                        help="splits to encode (default: train val test dictionary, those present)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a datamodule argument, e.g. --set init_args.stores=[data/synthsign-demo]")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--preview", type=int, default=0, metavar="N",
                        help="also render N test samples as ground truth vs reconstruction GIFs (builtin skeleton)")
    parser.add_argument("--preview-out", default=None, help="folder of the preview GIFs (default: OUT/preview)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")


def run(args: argparse.Namespace) -> int:
    dm = build_datamodule(args.data, args.set)
    summary = encode_to_cache(args.tokenizer, dm, args.out, splits=args.splits, data_config=args.data,
                              batch_size=args.batch_size, device=args.device, preview=args.preview,
                              preview_out=args.preview_out)
    for split, (samples, steps) in summary.splits.items():
        print(f"{split:<11} {samples:>6} samples {steps:>8} code steps")
    for path in summary.previews:
        print(f"preview {path}")
    print(f"wrote {args.out} (tokenizer hash {summary.digest[:16]}..., parts {summary.parts}, "
          f"codebooks {summary.codebook_sizes})")
    return 0
