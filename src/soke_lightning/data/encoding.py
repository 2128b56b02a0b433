"""Encode a dataset with a trained sign tokenizer: every sample's codes, batched by equal processed length.

Used by the token cache (`soke encode`) and by dictionary building. The tokenizer is passed in (anything with
``encode(poses, lengths)`` and ``code_lengths(lengths)``), so this data-layer module needs no model import.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from soke_lightning.data.datamodule import collate


def equal_length_batches(dataset, batch_size: int) -> list[list[int]]:
    """Batches of samples with the SAME processed length (in dataset order within a length).

    The encoder's receptive field reaches past a sequence's end, so codes near the end of a zero-padded sample
    would depend on what it was batched with; equal-length batches give exactly the codes of a batch of one.
    """
    by_length: dict[int, list[int]] = {}
    for i in range(len(dataset)):
        r = dataset.record(i)
        n = dataset.processing.output_length(int(r["length"]), float(r["fps"]), dataset.fps_cap(r["corpus"]))
        by_length.setdefault(n, []).append(i)
    return [ids[k:k + batch_size] for _, ids in sorted(by_length.items()) for k in range(0, len(ids), batch_size)]


@torch.no_grad()
def encode_dataset(tokenizer, dataset, batch_size: int, device: torch.device, renormalize=None,
                   desc: str = "") -> tuple[list[dict], list]:
    """Codes of every sample of a SignDataset: (records, [L_i, P] int arrays), grouped by processed length."""
    records, codes = [], []
    loader = DataLoader(dataset, batch_sampler=equal_length_batches(dataset, batch_size), collate_fn=collate)
    for batch in tqdm(loader, desc=desc, unit="batch", leave=False):
        poses = batch.poses.to(device)
        if renormalize is not None:
            poses = renormalize(poses)
        out = tokenizer.encode(poses, batch.lengths.to(device)).cpu().numpy()
        steps = tokenizer.code_lengths(batch.lengths).tolist()
        for i in range(len(batch)):
            records.append({"key": batch.keys[i], "name": batch.name[i], "corpus": batch.corpus[i],
                            "lang": batch.lang[i], "frames": int(batch.lengths[i])})
            codes.append(out[i, : steps[i]])
    return records, codes
