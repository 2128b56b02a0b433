"""`soke synth`: generate the SynthSign corpus (ASL/English, CSL/Chinese, DGS/German).

    soke synth --out data/synthsign-demo [--preset tiny|demo] [--seed N] [--lexicon-seed N]
               [--dictionary-coverage F] [--layout packed|official]

--layout packed (default) writes one store with splits train/val/test/dictionary and STORE/normalization.pt.
--layout official writes OUT/How2Sign, OUT/CSL-Daily and OUT/Phoenix_2014T in the release layout of the real
corpora (readable by `soke prepare`) and the dictionary split, which has no official format, as the packed store
OUT/dictionary. The same arguments give byte-identical output.
"""

from __future__ import annotations

import json

from soke_lightning.synthsign.generator import generate


def add_arguments(parser) -> None:
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--preset", default="demo", choices=["tiny", "demo"],
                        help="corpus size: tiny (tests, seconds) or demo (hundreds of sentences per language)")
    parser.add_argument("--seed", type=int, default=0, help="sentences, signers and noise")
    parser.add_argument("--lexicon-seed", type=int, default=0,
                        help="the languages' signs, concept frequencies and dictionary coverage order")
    parser.add_argument("--dictionary-coverage", type=float, default=0.6,
                        help="fraction of the other concepts the corpus uses that get a dictionary entry (every "
                             "val/test concept always has one)")
    parser.add_argument("--layout", default="packed", choices=["packed", "official"], help="output layout")


def run(args) -> int:
    summary = generate(args.out, preset=args.preset, seed=args.seed, lexicon_seed=args.lexicon_seed,
                       dictionary_coverage=args.dictionary_coverage, layout=args.layout, progress=True)
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    return 0
