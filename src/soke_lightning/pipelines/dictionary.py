"""Build a sign dictionary from a corpus split of isolated signs with a trained tokenizer (behind `soke dict build`).

The split's samples are encoded with the frozen tokenizer (equal-length batches, so each sample's codes are those
of a batch of one) and keyed by their text; the file records the tokenizer's hash, so a model trained with another
tokenizer refuses it. See :mod:`soke_lightning.retrieval.dictionary` for the format.
"""

from __future__ import annotations

from pathlib import Path

import torch

from soke_lightning.data.datamodule import split_datasets
from soke_lightning.models.tokenizer import SignTokenizer, tokenizer_hash
from soke_lightning.pipelines.encode import renormalizer
from soke_lightning.retrieval.dictionary import DictionaryError, SignDictionary, build_dictionary


def build_dictionary_file(tokenizer_ckpt: str | Path, dm, out: str | Path, *, split: str = "dictionary",
                          data_config: str | None = None, batch_size: int = 32, device: str | torch.device = "cpu",
                          aliases: bool = True, sign_span: bool = True) -> SignDictionary:
    """Encode ``split`` of the DataModule's stores into a dictionary saved at ``out``.

    Args:
        tokenizer_ckpt: stage-1 checkpoint whose codes the dictionary holds.
        dm: the :class:`~soke_lightning.data.datamodule.SignDataModule` whose stores hold ``split``.
        data_config: the YAML it was built from (recorded in the file).
        out: the dictionary file to write.
        split: the split of isolated signs (text = the word).
        batch_size: samples per encoder batch.
        device: torch device of the tokenizer.
        aliases: add the samples' recorded surface forms as aliases.
        sign_span: keep only the codes covering each sample's recorded sign span (False: the whole clip).

    Raises:
        DictionaryError: no store has ``split``.
    """
    device = torch.device(device)
    tokenizer = SignTokenizer.from_checkpoint(tokenizer_ckpt)
    digest = tokenizer_hash(tokenizer)
    tokenizer.to(device)
    datasets = split_datasets(dm, [split])
    if split not in datasets:
        raise DictionaryError(f"no split {split!r} in the stores {list(dm.stores)}; SynthSign stores have a "
                              f"'dictionary' split (`soke synth`), or pass --split NAME of a split of isolated signs")
    built = build_dictionary(tokenizer, [datasets[split]], tokenizer_hash=digest, batch_size=batch_size, device=device,
                             renormalize=renormalizer(dm, tokenizer, device),
                             info={"tokenizer": str(Path(tokenizer_ckpt).resolve()),
                                   "sources": list(map(str, dm.stores)), "split": split,
                                   "datamodule": str(data_config)},
                             aliases=aliases, sign_span=sign_span)
    built.save(out)
    return built
