"""`soke import-official`: convert the official SOKE tokenizer checkpoint into this project's tokenizer checkpoint.

    soke import-official --tokenizer OFFICIAL.ckpt --out outputs/official_tokenizer.ckpt [--stats DIR]

See :mod:`soke_lightning.models.official` for what is converted and checked.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from soke_lightning.models.official import import_official
from soke_lightning.models.tokenizer import tokenizer_hash


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tokenizer", required=True, help="official tokenizer checkpoint (Lightning .ckpt)")
    parser.add_argument("--out", required=True, help="our tokenizer checkpoint to write")
    parser.add_argument("--stats", default=None,
                        help="directory with the official mean.pt / std.pt (or our normalization.pt) to bake in")


def run(args: argparse.Namespace) -> int:
    tokenizer = import_official(args.tokenizer, args.stats)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tokenizer.save_checkpoint(out)
    sizes = ", ".join(f"{p} {n}" for p, n in tokenizer.codebook_sizes.items())
    print(f"wrote {out}: width {tokenizer.config['width']}, codebooks {sizes}, "
          f"statistics {'from ' + str(args.stats) if args.stats else 'NOT included (identity)'}")
    print(f"tokenizer hash {tokenizer_hash(tokenizer)}")
    if args.stats is None:
        print("note: pass --stats DIR_WITH_mean.pt_std.pt so the checkpoint can denormalise its reconstructions")
    return 0
