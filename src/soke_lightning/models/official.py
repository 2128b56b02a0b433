"""Convert the official SOKE tokenizer checkpoint (and mean.pt / std.pt) into ours (behind `soke import-official`).

The official Lightning checkpoint keeps the three part VQ-VAEs under ``vae.`` (body), ``hand_vae.`` (left hand) and
``rhand_vae.`` (right hand) with the key layout described in docs/formats.md; our module names are the same below
``vaes.<part>.``, so the conversion is a strict one-to-one rename: every official tokenizer key is used, none of
ours is missing, every shape is checked, and any mismatch is listed in the error. Entries outside the three prefixes
(loss buffers ``_losses.*``, an LM) are reported and ignored. The official file has no EMA statistics, so the
imported quantizers are marked initialised (EMA state = codebook): a later training step never re-initialises them.
"""

from __future__ import annotations

import logging
import os

import torch

from soke_lightning.core.errors import SokeError
from soke_lightning.data.normalization import Normalizer, load_stats
from soke_lightning.models.tokenizer import SignTokenizer

log = logging.getLogger(__name__)

#: Official state-dict prefix -> our part name (docs/design.md §3, docs/formats.md).
OFFICIAL_PREFIXES: dict[str, str] = {"vae.": "body", "hand_vae.": "lhand", "rhand_vae.": "rhand"}
#: Our per-part quantizer buffers that the official file does not have (filled by ``mark_initialised``).
_DERIVED = ("quantizer.ema_sum", "quantizer.ema_count", "quantizer.initialised", "quantizer.num_updates")


class OfficialFormatError(SokeError, ValueError):
    """The official checkpoint does not have the expected keys or shapes."""


def _official_parts(state: dict[str, torch.Tensor]) -> tuple[dict[str, dict[str, torch.Tensor]], list[str]]:
    parts: dict[str, dict[str, torch.Tensor]] = {p: {} for p in OFFICIAL_PREFIXES.values()}
    ignored = []
    for key, value in state.items():
        # Longest prefix first: "rhand_vae." and "hand_vae." both end in "vae.".
        for prefix in sorted(OFFICIAL_PREFIXES, key=len, reverse=True):
            if key.startswith(prefix):
                parts[OFFICIAL_PREFIXES[prefix]][key[len(prefix):]] = value
                break
        else:
            ignored.append(key)
    return parts, ignored


def infer_config(state: dict[str, torch.Tensor], source: str = "<checkpoint>") -> dict:
    """Read the tokenizer sizes off the official tensors (width, code dim, codebooks, depth, down_t)."""
    parts, _ = _official_parts(state)
    empty = [p for p, s in parts.items() if not s]
    if empty:
        raise OfficialFormatError(f"{source}: no keys for parts {empty}; expected prefixes {list(OFFICIAL_PREFIXES)}")
    body = parts["body"]
    try:
        width = body["encoder.model.0.weight"].shape[0]
        codebook = body["quantizer.codebook"]
    except KeyError as err:
        raise OfficialFormatError(f"{source}: missing key 'vae.{err.args[0]}' (see docs/formats.md)") from None
    down_t = sum(1 for k in body if k.startswith("encoder.model.") and k.endswith(".0.weight")
                 and k.count(".") == 4)
    depth = len({k.split(".")[5] for k in body if k.startswith("encoder.model.2.1.model.")})
    stride_t = body["encoder.model.2.0.weight"].shape[-1] // 2 if down_t else 2
    return dict(layout="soke", codebook_sizes={p: int(s["quantizer.codebook"].shape[0]) for p, s in parts.items()},
                width=int(width), code_dim=int(codebook.shape[1]), depth=depth, down_t=down_t, stride_t=stride_t,
                dilation_growth_rate=3, activation="relu", norm="none")


def convert_state_dict(state: dict[str, torch.Tensor], tokenizer: SignTokenizer,
                       source: str = "<checkpoint>") -> dict[str, torch.Tensor]:
    """Map an official state dict onto ``tokenizer``'s keys, strictly.

    Raises:
        OfficialFormatError listing every unused official key, every missing key and every shape mismatch.
    """
    parts, ignored = _official_parts(state)
    if ignored:
        log.info("%s: ignoring %d entries outside the tokenizer prefixes (e.g. %s)", source, len(ignored),
                 ignored[:3])
    ours = tokenizer.state_dict()
    out: dict[str, torch.Tensor] = {}
    unused, shape_errors = [], []
    for part, entries in parts.items():
        for key, value in entries.items():
            target = f"vaes.{part}.{key}"
            if target not in ours or key.endswith(_DERIVED):
                unused.append(f"{[p for p, n in OFFICIAL_PREFIXES.items() if n == part][0]}{key}")
            elif tuple(ours[target].shape) != tuple(value.shape):
                shape_errors.append(f"{target}: official {tuple(value.shape)} vs ours {tuple(ours[target].shape)}")
            else:
                out[target] = value.to(ours[target].dtype)
    missing = [k for k in ours if k not in out and not k.endswith(_DERIVED) and not k.startswith("normalizer.")]
    if unused or missing or shape_errors:
        raise OfficialFormatError(
            f"{source} does not match the official tokenizer layout (docs/formats.md):\n"
            f"  unused official keys ({len(unused)}): {unused[:20]}\n"
            f"  missing keys ({len(missing)}): {missing[:20]}\n"
            f"  shape mismatches ({len(shape_errors)}): {shape_errors[:20]}"
        )
    return out


def load_official_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict of an official Lightning checkpoint (or of a bare state-dict file)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise OfficialFormatError(f"{path}: expected a Lightning checkpoint with a 'state_dict', got "
                                  f"{type(ckpt).__name__}")
    return state


def import_official(tokenizer_ckpt: str | os.PathLike, stats: str | os.PathLike | None = None) -> SignTokenizer:
    """Build our tokenizer from the official checkpoint (and optionally the official mean.pt/std.pt directory)."""
    state = load_official_state(tokenizer_ckpt)
    tokenizer = SignTokenizer(**infer_config(state, str(tokenizer_ckpt)))
    converted = convert_state_dict(state, tokenizer, str(tokenizer_ckpt))
    tokenizer.load_state_dict(converted, strict=False)  # the strictness check is convert_state_dict's
    for vae in tokenizer.vaes.values():
        vae.quantizer.mark_initialised()
    if stats is not None:
        mean, std = load_stats(stats)
        tokenizer.normalizer = Normalizer(mean, std)
    return tokenizer.eval()
