"""The stage-2 text tokenizer: a real mBART tokenizer or an embedded one trained on the training texts,
extended with the motion vocabulary, building encoder inputs ``text [+ retrieval string] </s> src_lang``.

Motion token spelling (ours, not the reference's ``<motion_id_5>``): ``<{part}_{code}>``, e.g.
``<body_5><lhand_3><rhand_7>`` is one time step of the three SOKE streams and ``<all_12>`` one step of the
coupled baseline. Target sign-language tags are the registry's ``en_ASL`` / ``zh_CSL`` / ``de_DGS``; the
parallel-decoding baseline adds part-specific start tags ``en_ASL_lhand``, ``en_ASL_rhand`` (the first part
keeps the plain tag, as in the reference).

The motion vocabulary is appended right after the text vocabulary in a fixed order (tags, then every code
of every part), so token ids are ``text_vocab_size + offset`` and :class:`~soke_lightning.models.sign_mbart.
SignMBart` can compute them without a tokenizer; :meth:`TextTokenizer.add_motion_vocabulary` checks that the
ids the tokenizer assigns are exactly those.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from soke_lightning.core.languages import LANGUAGES

log = logging.getLogger(__name__)

#: Written next to the tokenizer files by :meth:`TextTokenizer.save`.
META_FILE = "soke_text_tokenizer.json"
#: mBART's special tokens, in mBART's id order (<s>=0, <pad>=1, </s>=2, <unk>=3).
MBART_SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>")
MASK_TOKEN = "<mask>"
#: A tokenizer with fewer regular (non-special, non-language-code) tokens than this is treated as empty.
MIN_REGULAR_TOKENS = 8


def motion_token(part: str, code: int) -> str:
    """The token string of ``code`` of ``part`` (``<body_5>``)."""
    return f"<{part}_{int(code)}>"


def part_tag(tag: str, part: str, index: int) -> str:
    """Start tag of stream ``index`` for the parallel baseline: ``en_ASL``, ``en_ASL_lhand``, ``en_ASL_rhand``."""
    return tag if index == 0 else f"{tag}_{part}"


def motion_string(codes: torch.Tensor | Sequence[Sequence[int]], parts: Sequence[str]) -> str:
    """Spell a code matrix as motion tokens, one time step after the other (the retrieval string format).

    Args:
        codes: [L, P] per-part code indices.
        parts: the P part names, in the tokenizer's order.

    Returns:
        ``"<body_b1><lhand_l1><rhand_r1><body_b2>..."``.
    """
    rows = codes.tolist() if isinstance(codes, torch.Tensor) else codes
    out = []
    for row in rows:
        if len(row) != len(parts):
            raise ValueError(f"motion_string: a code row has {len(row)} entries, expected one per part {list(parts)}")
        out.extend(motion_token(p, c) for p, c in zip(parts, row))
    return "".join(out)


@dataclass(frozen=True)
class MotionVocabulary:
    """The tokens stage 2 appends to the text vocabulary, in their id order.

    Attributes:
        parts: part names in the stage-1 tokenizer's order (``("body", "lhand", "rhand")`` or ``("all",)``).
        codebook_sizes: codebook size K of each part.
        sign_tags: target sign-language tags (``en_ASL`` ...), from the language registry.
        part_specific_tags: add a start tag per part and tag (parallel decoding baseline).
    """

    parts: tuple[str, ...]
    codebook_sizes: tuple[int, ...]
    sign_tags: tuple[str, ...]
    part_specific_tags: bool = False

    def __post_init__(self):
        object.__setattr__(self, "parts", tuple(self.parts))
        object.__setattr__(self, "codebook_sizes", tuple(int(k) for k in self.codebook_sizes))
        object.__setattr__(self, "sign_tags", tuple(self.sign_tags))
        if not self.parts or len(self.parts) != len(self.codebook_sizes):
            raise ValueError(f"MotionVocabulary: parts {list(self.parts)} and codebook_sizes "
                             f"{list(self.codebook_sizes)} must be non-empty and of equal length")
        if len(set(self.parts)) != len(self.parts):
            raise ValueError(f"MotionVocabulary: duplicate part names in {list(self.parts)}")
        if any(k < 1 for k in self.codebook_sizes):
            raise ValueError(f"MotionVocabulary: codebook sizes must be >= 1, got {list(self.codebook_sizes)}")
        if not self.sign_tags or len(set(self.sign_tags)) != len(self.sign_tags):
            raise ValueError(f"MotionVocabulary: sign_tags must be non-empty and unique, got {list(self.sign_tags)}")

    def tag_tokens(self) -> list[str]:
        """Tag tokens in id order (for the parallel baseline: every tag's per-part variants)."""
        if not self.part_specific_tags:
            return list(self.sign_tags)
        return [part_tag(t, p, i) for t in self.sign_tags for i, p in enumerate(self.parts)]

    def code_tokens(self) -> list[str]:
        """Motion tokens in id order: every code of the first part, then of the second, ..."""
        return [motion_token(p, c) for p, k in zip(self.parts, self.codebook_sizes) for c in range(k)]

    def tokens(self) -> list[str]:
        return self.tag_tokens() + self.code_tokens()

    def __len__(self) -> int:
        n_tags = len(self.sign_tags) * (len(self.parts) if self.part_specific_tags else 1)
        return n_tags + sum(self.codebook_sizes)


@dataclass
class SourceBatch:
    """Encoder inputs.

    Attributes:
        input_ids: [B, S] ``subwords..., </s>, src_lang`` right-padded with the pad id.
        attention_mask: [B, S] 1 on real tokens.
        lengths: [B] number of real tokens (from the attention mask).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    lengths: torch.Tensor

    def to(self, device) -> SourceBatch:
        return SourceBatch(self.input_ids.to(device), self.attention_mask.to(device), self.lengths.to(device))


def registry_source_codes() -> list[str]:
    """mBART source-language codes of every registered language (``en_XX``, ``zh_CN``, ``de_DE``)."""
    return sorted({lang.spoken_code for lang in LANGUAGES.values()})


class TextTokenizer:
    """A transformers tokenizer plus the motion vocabulary and the explicit source-sequence rule.

    Build it with :meth:`train` (embedded default), :meth:`from_pretrained` (a local mBART directory or a
    directory written by :meth:`save`), or wrap any ``PreTrainedTokenizerBase`` directly.

    Args:
        tokenizer: a transformers tokenizer whose ``<pad>``, ``</s>``, ``<unk>`` follow mBART's conventions.
        source: where it came from (used in error messages).
        base_vocab_size: size of the text vocabulary before the motion tokens (defaults to ``len(tokenizer)``).
    """

    def __init__(self, tokenizer, source: str = "<in memory>", base_vocab_size: int | None = None):
        self.hf = tokenizer
        self.source = source
        self.base_vocab_size = len(tokenizer) if base_vocab_size is None else int(base_vocab_size)
        self.motion: MotionVocabulary | None = None
        for name in ("pad_token_id", "eos_token_id", "unk_token_id"):
            if getattr(tokenizer, name) is None:
                raise ValueError(f"tokenizer from {source}: {name} is not set; an mBART-style tokenizer needs "
                                 f"<pad>, </s> and <unk> tokens")
        self._check_not_empty()

    # ----------------------------------------------------------------------------------------------- building
    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 8000, source_codes: Sequence[str] | None = None,
              min_frequency: int = 1) -> TextTokenizer:
        """Train a small BPE tokenizer with mBART's conventions on ``texts`` (the embedded default).

        Every character seen in ``texts`` gets a token (Chinese has no spaces, so characters are the base
        alphabet and frequent pairs merge on top); unseen characters become ``<unk>``.

        Args:
            texts: training sentences.
            vocab_size: target size of the learnt vocabulary (a small corpus may give fewer).
            source_codes: source-language codes to add (default: every registered language's, e.g. ``en_XX``).
            min_frequency: minimum pair frequency for a merge.

        Returns:
            A tokenizer with ids ``<s>=0 <pad>=1 </s>=2 <unk>=3``, the subwords, the language codes and ``<mask>``.
        """
        from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
        from transformers import PreTrainedTokenizerFast

        texts = [t for t in texts if t]
        if not texts:
            raise ValueError("TextTokenizer.train: no non-empty training texts were given")
        codes = list(source_codes) if source_codes is not None else registry_source_codes()
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        tok.normalizer = normalizers.NFKC()
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                      special_tokens=list(MBART_SPECIAL_TOKENS), show_progress=False)
        tok.train_from_iterator(texts, trainer)
        tok.add_special_tokens([*codes, MASK_TOKEN])
        hf = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", pad_token="<pad>", eos_token="</s>",
                                     unk_token="<unk>", mask_token=MASK_TOKEN)
        ids = hf.convert_tokens_to_ids(list(MBART_SPECIAL_TOKENS))
        if ids != [0, 1, 2, 3]:
            raise RuntimeError(f"embedded tokenizer: special ids are {ids}, expected [0, 1, 2, 3] (mBART order)")
        log.info("trained an embedded BPE tokenizer on %d texts: %d tokens", len(texts), len(hf))
        return cls(hf, source=f"embedded BPE trained on {len(texts)} texts")

    @classmethod
    def from_pretrained(cls, path: str | Path) -> TextTokenizer:
        """Load a tokenizer from a local directory, never from the network.

        Accepts a real mBART directory (``sentencepiece.bpe.model``, e.g. a local copy of mbart-large-cc25) or
        a directory written by :meth:`save` (which also restores the motion vocabulary).

        Raises:
            FileNotFoundError: ``path`` is not a local directory (e.g. a hub id).
            ValueError: the loaded tokenizer is (nearly) empty.
        """
        directory = Path(path)
        if not directory.is_dir():
            raise FileNotFoundError(
                f"text tokenizer {str(path)!r} is not a local directory. Hub ids are not downloaded (offline, "
                f"HF_HUB_OFFLINE=1): pass a local copy of an mBART model directory holding "
                f"sentencepiece.bpe.model (e.g. mbart-large-cc25), a run's saved tokenizer directory, or use the "
                f"embedded tokenizer trained on the training texts (TextTokenizer.train / tokenizer: embedded)")
        meta = json.loads((directory / META_FILE).read_text()) if (directory / META_FILE).is_file() else None
        has_sp = (directory / "sentencepiece.bpe.model").is_file()
        has_fast = (directory / "tokenizer.json").is_file()
        if not (has_sp or has_fast):
            raise FileNotFoundError(f"text tokenizer directory {directory} has neither sentencepiece.bpe.model "
                                    f"(real mBART) nor tokenizer.json (a saved run); found "
                                    f"{sorted(p.name for p in directory.iterdir())}")
        if has_sp and not (directory / "tokenizer_config.json").is_file():
            from transformers import MBartTokenizer

            hf = MBartTokenizer.from_pretrained(str(directory), local_files_only=True)
        else:
            from transformers import AutoTokenizer

            hf = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
        out = cls(hf, source=str(directory), base_vocab_size=meta["base_vocab_size"] if meta else None)
        if meta and meta.get("motion"):
            out.add_motion_vocabulary(MotionVocabulary(**meta["motion"]))
        return out

    def save(self, directory: str | Path) -> Path:
        """Write the tokenizer (with its motion tokens) and :data:`META_FILE` to ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.hf.save_pretrained(str(directory))
        meta = {"base_vocab_size": self.base_vocab_size, "motion": asdict(self.motion) if self.motion else None,
                "source": self.source}
        (directory / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        return directory

    def _check_not_empty(self) -> None:
        special = set(self.hf.all_special_ids)
        vocab = self.hf.get_vocab()
        lang_like = {i for t, i in vocab.items() if len(t) == 5 and t[2] == "_" and t[:2].islower() and t[3:].isupper()}
        regular = self.base_vocab_size - len((special | lang_like) & set(range(self.base_vocab_size)))
        if regular < MIN_REGULAR_TOKENS:
            raise ValueError(
                f"text tokenizer from {self.source} has only {self.base_vocab_size} tokens ({regular} besides special "
                f"tokens and language codes), so every word would become <unk>. transformers returns such an empty "
                f"tokenizer without error when a hub id such as facebook/mbart-large-cc25 is requested offline. "
                f"Pass a local mBART directory holding sentencepiece.bpe.model, or use the embedded tokenizer "
                f"(TextTokenizer.train on the training texts)")

    # ------------------------------------------------------------------------------------------- vocabulary
    def add_motion_vocabulary(self, motion: MotionVocabulary) -> None:
        """Append the motion vocabulary (tags as special tokens, codes as added tokens) right after the text
        vocabulary; a tokenizer that already holds it (reloaded from :meth:`save`) is only checked.

        Raises:
            ValueError: the resulting ids are not ``base_vocab_size + i`` for the i-th motion token.
        """
        tokens = motion.tokens()
        expected = list(range(self.base_vocab_size, self.base_vocab_size + len(tokens)))
        if self.motion is None and len(self.hf) == self.base_vocab_size:
            self.hf.add_tokens(motion.tag_tokens(), special_tokens=True)
            self.hf.add_tokens(motion.code_tokens())
        actual = self.hf.convert_tokens_to_ids(tokens)
        if actual != expected or len(self.hf) != expected[-1] + 1:
            bad = next((i for i, (a, e) in enumerate(zip(actual, expected)) if a != e), len(tokens) - 1)
            raise ValueError(
                f"text tokenizer from {self.source}: motion token {tokens[bad]!r} has id {actual[bad]}, expected "
                f"{expected[bad]} (text vocabulary {self.base_vocab_size} + {bad}); tokenizer length {len(self.hf)}, "
                f"expected {expected[-1] + 1}. The motion vocabulary must be appended once, right after the text "
                f"vocabulary, in MotionVocabulary order; rebuild the tokenizer instead of adding other tokens")
        self.motion = motion

    def __len__(self) -> int:
        return len(self.hf)

    @property
    def pad_token_id(self) -> int:
        return int(self.hf.pad_token_id)

    @property
    def eos_token_id(self) -> int:
        return int(self.hf.eos_token_id)

    def token_id(self, token: str) -> int:
        """Id of ``token``; a token missing from the vocabulary raises instead of silently becoming <unk>."""
        idx = self.hf.convert_tokens_to_ids(token)
        if idx is None or (idx == self.hf.unk_token_id and token != self.hf.unk_token):
            raise KeyError(f"token {token!r} is not in the text tokenizer from {self.source}")
        return int(idx)

    def source_code(self, lang: str) -> str:
        """A language key (``asl``) or source code (``en_XX``) -> the source code."""
        return LANGUAGES[lang].spoken_code if lang in LANGUAGES else lang

    # ------------------------------------------------------------------------------------------- encoding
    def count_tokens(self, text: str) -> int:
        """Subword tokens of ``text`` without special tokens (motion tokens count one each)."""
        return len(self.hf(text, add_special_tokens=False)["input_ids"])

    def encode_source(self, texts: Sequence[str], langs: Sequence[str], max_length: int = 256) -> SourceBatch:
        """Build encoder inputs ``subwords..., </s>, src_lang`` explicitly (no tokenizer post-processing).

        Args:
            texts: B prompts (sentence, optionally followed by a retrieval string of motion tokens).
            langs: B language keys (``asl``) or source codes (``en_XX``).
            max_length: total length limit; the subwords are truncated to ``max_length - 2``.

        Returns:
            A right-padded :class:`SourceBatch`.
        """
        if len(texts) != len(langs):
            raise ValueError(f"encode_source: {len(texts)} texts but {len(langs)} languages")
        if max_length < 3:
            raise ValueError(f"encode_source: max_length must be >= 3, got {max_length}")
        lang_ids = {c: self.token_id(c) for c in {self.source_code(lang) for lang in langs}}
        pieces = self.hf(list(texts), add_special_tokens=False)["input_ids"] if texts else []
        rows = [p[: max_length - 2] + [self.eos_token_id, lang_ids[self.source_code(lang)]]
                for p, lang in zip(pieces, langs)]
        width = max((len(r) for r in rows), default=0)
        input_ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            attention_mask[i, : len(row)] = 1
        return SourceBatch(input_ids, attention_mask, attention_mask.sum(1))


def tokenizer_files(tokenizer: TextTokenizer) -> dict[str, bytes]:
    """The files :meth:`TextTokenizer.save` writes, as ``{name: bytes}`` (stored inside checkpoints)."""
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save(tmp)
        return {p.name: p.read_bytes() for p in sorted(Path(tmp).iterdir()) if p.is_file()}


def tokenizer_from_files(files: dict[str, bytes], source: str = "a stage-2 checkpoint") -> TextTokenizer:
    """Rebuild a :class:`TextTokenizer` from :func:`tokenizer_files` output (``source`` names it in errors)."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in files.items():
            (Path(tmp) / name).write_bytes(data)
        tokenizer = TextTokenizer.from_pretrained(tmp)
    tokenizer.source = source
    return tokenizer
