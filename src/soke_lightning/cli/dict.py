"""`soke dict`: sign dictionaries for retrieval.

    soke dict build  --tokenizer CKPT --data datamodules/synthsign.yaml --out outputs/dict.json [--split dictionary]
                     [--no-aliases]
    soke dict import word2code.json --out outputs/official_dict.json [--latin-lang asl|dgs | --lang L] [--tokenizer CKPT]
    soke dict match  outputs/dict.json --lang asl --text "Tomorrow I will eat two apples." [--top-k 3 --order longest]
                     [--inflection none|suffix]
    soke dict info   outputs/dict.json [--store data/synthsign-demo --split test] [--inflection none|suffix]

``build`` encodes every sample of an isolated-sign split (text = the word) with the frozen tokenizer and records
its hash; the samples' recorded surface forms (SynthSign's ``meta["forms"]``: plurals, conjugations, declensions)
become aliases of their entries; ``import`` reads the official word2code.json (hash "official-import" unless
``--tokenizer`` binds it; no aliases); ``match`` shows what retrieval puts into the prompt of a sentence and why
(a hit through an alias or the inflection fallback names the form it matched); ``info`` prints the size per
language and, with ``--store``, how much of a split's text the dictionary covers.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from soke_lightning.cli.lightning import build_datamodule
from soke_lightning.data.store import open_store
from soke_lightning.models.tokenizer import SignTokenizer, tokenizer_hash
from soke_lightning.pipelines.dictionary import build_dictionary_file
from soke_lightning.retrieval.dictionary import SignDictionary, import_word2code
from soke_lightning.retrieval.matcher import (
    approximate_token_count,
    content_coverage,
    fit_to_budget,
    get_matcher,
    normalize_text,
    retrieve,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="{build,import,match,info}")

    p = sub.add_parser("build", help="encode an isolated-sign split with a tokenizer into a dictionary")
    p.add_argument("--tokenizer", required=True, help="stage-1 tokenizer checkpoint")
    p.add_argument("--data", required=True, help="datamodule YAML whose stores hold the isolated-sign split")
    p.add_argument("--out", required=True, help="dictionary file to write (JSON)")
    p.add_argument("--split", default="dictionary", help="split of isolated signs (default: dictionary)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a datamodule argument, e.g. --set init_args.stores=[data/synthsign-demo]")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-aliases", action="store_true",
                   help="ignore the samples' recorded surface forms (meta 'forms'): keys only, as SOKE's dictionary")
    p.add_argument("--whole-clip", action="store_true",
                   help="keep the codes of the whole clip (SOKE) instead of only those covering the sign's recorded "
                        "span (meta['span'], SynthSign)")

    p = sub.add_parser("import", help="convert the official word2code.json")
    p.add_argument("word2code", help="the official scripts/word2code.json")
    p.add_argument("--out", required=True, help="dictionary file to write (JSON)")
    p.add_argument("--lang", default=None, help="language of EVERY entry (asl, csl, dgs)")
    p.add_argument("--latin-lang", default=None,
                   help="language of the entries without Chinese characters (asl or dgs); entries with Chinese "
                        "characters are csl")
    p.add_argument("--tokenizer", default=None,
                   help="bind the dictionary to this tokenizer checkpoint (the official one via `soke "
                        "import-official`); default: hash 'official-import', refused by models of other tokenizers")

    inflection_help = ("words matcher, English/German: 'suffix' also matches a dictionary word plus an inflection "
                       "suffix (EN s, es, ed, d, ing, 's; DE e, en, er, es, em, n, s, t, st, te, ...; stem >= 3 "
                       "letters; exact matches first; never inside another word or across languages): 'cups' -> "
                       "cup, 'Handys' -> handy, 'schlechte' -> schlecht. Irregular forms need aliases. Default "
                       "'none' (SOKE parity)")
    p = sub.add_parser("match", help="show the entries retrieval injects for a sentence, in prompt order",
                       description="Show the entries retrieval injects for a sentence. The words matcher finds the "
                                   "input language's dictionary words and their aliases (other surface forms) as "
                                   "whole words / phrases, longest first; --inflection suffix adds a fallback for "
                                   "inflected words without an alias.")
    p.add_argument("dictionary", help="dictionary file")
    p.add_argument("--lang", required=True, help="sign language of the text (asl, csl, dgs)")
    p.add_argument("--text", required=True, action="append", help="sentence (repeatable)")
    p.add_argument("--top-k", type=int, default=3, help="entries per sentence (SOKE: 3; 0 = all)")
    p.add_argument("--max-codes", type=int, default=10, help="code steps per entry (SOKE: 10; 0 = all)")
    p.add_argument("--order", choices=("longest", "text"), default="longest")
    p.add_argument("--matcher", choices=("words", "soke_substring"), default="words")
    p.add_argument("--max-tokens", type=int, default=256, help="encoder budget (0 = none)")
    p.add_argument("--inflection", choices=("none", "suffix"), default="none", help=inflection_help)
    p.add_argument("--prompt", action="store_true", help="also print the whole prompt")

    p = sub.add_parser("info", help="size per language; with --store, coverage of a split's text")
    p.add_argument("dictionary", help="dictionary file")
    p.add_argument("--store", default=None, help="a packed store whose text coverage to measure")
    p.add_argument("--split", default="test", help="split of --store (default: test)")
    p.add_argument("--matcher", choices=("words", "soke_substring"), default="words")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--inflection", choices=("none", "suffix"), default="none", help=inflection_help)
    p.add_argument("--json", default=None, help="also write the numbers to this JSON file")


def _build(args) -> int:
    out = build_dictionary_file(args.tokenizer, build_datamodule(args.data, args.set), args.out, split=args.split,
                                data_config=args.data, batch_size=args.batch_size, device=args.device,
                                aliases=not args.no_aliases, sign_span=not args.whole_clip)
    _print_summary(out)
    print(f"wrote {args.out} ({len(out)} entries, tokenizer hash {out.tokenizer_hash[:16]}...)")
    return 0


def _import(args) -> int:
    digest = parts = sizes = None
    if args.tokenizer:
        tok = SignTokenizer.from_checkpoint(args.tokenizer)
        digest, parts, sizes = tokenizer_hash(tok), tok.parts, tok.codebook_sizes
    out = import_word2code(args.word2code, lang=args.lang, latin_lang=args.latin_lang, tokenizer_hash=digest,
                           parts=parts, codebook_sizes=sizes)
    out.save(args.out)
    _print_summary(out)
    print(f"wrote {args.out} ({len(out)} entries, tokenizer hash {out.tokenizer_hash[:16]})")
    return 0


def _match(args) -> int:
    dictionary = SignDictionary.load(args.dictionary)
    matcher = get_matcher(args.matcher, dictionary, args.inflection)
    words = get_matcher("words", dictionary, args.inflection)
    for text in args.text:
        hits = matcher.match(text, args.lang)
        entries = retrieve(text, args.lang, dictionary, top_k=args.top_k or None,
                           max_codes_per_entry=args.max_codes or None, order=args.order, matcher=matcher)
        prompt, kept = fit_to_budget(text, args.lang, entries, dictionary.parts, args.max_tokens or None)
        content, covered = content_coverage(text, args.lang, words)
        print(f"text: {text}")
        print(f"  {len(hits)} dictionary hits ({args.matcher}), {len(kept)} injected, order {args.order}:")
        normalized = normalize_text(text)
        for i, e in enumerate(entries, 1):
            m = e.match
            status = "" if i <= len(kept) else "   (dropped: over the token budget)"
            other = "" if m.lang == args.lang else f" [{m.lang} entry]"
            form = "" if m.via == "key" else f" as {normalized[m.start:m.end]!r} ({m.via})"
            print(f"  {i}. {m.word!r}{other}{form} at [{m.start}:{m.end}]  codes {e.total_codes} -> {len(e.codes)}"
                  f"{status}")
        rest = [m.word for m in hits if m.word not in {e.word for e in entries}]
        if rest:
            print(f"  not injected: {', '.join(repr(w) for w in rest)}")
        print(f"  content words covered: {covered}/{content}; prompt ~{approximate_token_count(prompt) + 2} tokens "
              f"(upper bound)")
        if args.prompt:
            print(f"  prompt: {prompt}")
    return 0


def _info(args) -> int:
    dictionary = SignDictionary.load(args.dictionary)
    print(f"{args.dictionary}: {len(dictionary)} entries, tokenizer hash {dictionary.tokenizer_hash[:16]}, parts "
          f"{list(dictionary.parts)}, codebooks {dictionary.codebook_sizes}")
    summary = {"entries": len(dictionary), "tokenizer_hash": dictionary.tokenizer_hash,
               "languages": _print_summary(dictionary)}
    if args.store:
        from tqdm import tqdm

        split = open_store(args.store).split(args.split)
        matcher = get_matcher(args.matcher, dictionary, args.inflection)
        words = get_matcher("words", dictionary, args.inflection)
        stats: dict[str, list[float]] = {}
        for r in tqdm(split.records, desc="coverage", unit="sentence", leave=False):
            text, lang = r["text"], r["lang"]
            entries = retrieve(text, lang, dictionary, top_k=args.top_k, matcher=matcher)
            content, covered = content_coverage(text, lang, words)
            s = stats.setdefault(lang, [0, 0, 0, 0, 0])
            for i, v in enumerate((1, bool(entries), content, covered, len(entries))):
                s[i] += v
        print(f"coverage of {args.store} split {args.split!r} ({args.matcher} matcher, inflection "
              f"{args.inflection}, top-{args.top_k}):")
        print(f"  {'lang':<5}{'sentences':>10}{'with hit':>10}{'content words':>15}{'covered':>9}{'entries/sent':>14}")
        coverage = {}
        for lang, (n, hit, content, covered, entries) in stats.items():
            coverage[lang] = {"sentences": n, "sentence_hit_rate": hit / n,
                              "content_word_coverage": covered / content if content else 0.0,
                              "entries_per_sentence": entries / n}
            print(f"  {lang:<5}{n:>10}{hit / n:>10.1%}{content:>15}{coverage[lang]['content_word_coverage']:>9.1%}"
                  f"{entries / n:>14.2f}")
        summary["coverage"] = {"store": str(args.store), "split": args.split, "matcher": args.matcher,
                               "inflection": args.inflection, "per_language": coverage}
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


def _print_summary(dictionary) -> dict:
    summary = dictionary.summary()
    print(f"  {'lang':<5}{'words':>7}{'exemplars':>11}{'aliases':>9}{'multi-word':>12}   code length min / median / max")
    for lang, s in summary.items():
        c = s["code_length"]
        print(f"  {lang:<5}{s['words']:>7}{s['exemplars']:>11}{s['aliases']:>9}{s['multi_word']:>12}   "
              f"{c['min']} / {c['median']:g} / {c['max']}")
    return summary


def run(args: argparse.Namespace) -> int:
    return {"build": _build, "import": _import, "match": _match, "info": _info}[args.action](args)
