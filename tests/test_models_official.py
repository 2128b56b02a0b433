"""`soke import-official`: a checkpoint built with the official layout (docs/formats.md) converts strictly, and our tokenizer
gives the same codes and reconstructions as an independent functional implementation of the reference architecture
written from that document (not from our modules)."""

import argparse

import pytest
import torch
import torch.nn.functional as F

from soke_lightning.cli import import_official as import_official_cli
from soke_lightning.core.layout import SOKE_LAYOUT
from soke_lightning.models.official import OfficialFormatError, import_official
from soke_lightning.models.tokenizer import SignTokenizer, tokenizer_hash

WIDTH = 512
DILATIONS = (9, 3, 1)  # Resnet1D after reversing 3**0, 3**1, 3**2


def official_layout(nfeats: int, codes: int, width: int = WIDTH) -> list[tuple[str, tuple[int, ...]]]:
    """(key, shape) of one reference VQ-VAE, in the official order (docs/formats.md)."""
    keys = [("encoder.model.0.weight", (width, nfeats, 3)), ("encoder.model.0.bias", (width,))]

    def resnet(prefix):
        out = []
        for i in range(3):
            out += [(f"{prefix}.model.{i}.conv1.weight", (width, width, 3)), (f"{prefix}.model.{i}.conv1.bias", (width,)),
                    (f"{prefix}.model.{i}.conv2.weight", (width, width, 1)), (f"{prefix}.model.{i}.conv2.bias", (width,))]
        return out

    for s in (2, 3):
        keys += [(f"encoder.model.{s}.0.weight", (width, width, 4)), (f"encoder.model.{s}.0.bias", (width,))]
        keys += resnet(f"encoder.model.{s}.1")
    keys += [("encoder.model.4.weight", (width, width, 3)), ("encoder.model.4.bias", (width,)),
             ("decoder.model.0.weight", (width, width, 3)), ("decoder.model.0.bias", (width,))]
    for s in (2, 3):
        keys += resnet(f"decoder.model.{s}.0")
        keys += [(f"decoder.model.{s}.2.weight", (width, width, 3)), (f"decoder.model.{s}.2.bias", (width,))]
    keys += [("decoder.model.4.weight", (width, width, 3)), ("decoder.model.4.bias", (width,)),
             ("decoder.model.6.weight", (nfeats, width, 3)), ("decoder.model.6.bias", (nfeats,)),
             ("quantizer.codebook", (codes, width))]
    return keys


def random_official_state(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for prefix, nfeats, codes in (("vae.", 43, 96), ("hand_vae.", 45, 192), ("rhand_vae.", 45, 192)):
        layout = official_layout(nfeats, codes)
        assert len(layout) == 67
        for key, shape in layout:
            fan_in = shape[1] * shape[2] if len(shape) == 3 else 1
            t = torch.randn(shape, generator=gen) / fan_in ** 0.5
            state[prefix + key] = t * (0.3 if key.endswith("bias") else 1.0)
    state["_losses.recons"] = torch.zeros(1)
    return state


# ----------------------------------------------------------------------- functional reference (from the doc only)
def _resnet(sd, prefix, x):
    for i, d in enumerate(DILATIONS):
        h = F.conv1d(F.relu(x), sd[f"{prefix}.model.{i}.conv1.weight"], sd[f"{prefix}.model.{i}.conv1.bias"],
                     padding=d, dilation=d)
        h = F.conv1d(F.relu(h), sd[f"{prefix}.model.{i}.conv2.weight"], sd[f"{prefix}.model.{i}.conv2.bias"])
        x = x + h
    return x


def ref_encode(sd, x):
    h = x.permute(0, 2, 1)
    h = F.relu(F.conv1d(h, sd["encoder.model.0.weight"], sd["encoder.model.0.bias"], padding=1))
    for s in (2, 3):
        h = F.conv1d(h, sd[f"encoder.model.{s}.0.weight"], sd[f"encoder.model.{s}.0.bias"], stride=2, padding=1)
        h = _resnet(sd, f"encoder.model.{s}.1", h)
    h = F.conv1d(h, sd["encoder.model.4.weight"], sd["encoder.model.4.bias"], padding=1)
    flat = h.permute(0, 2, 1).reshape(-1, h.shape[1])
    book = sd["quantizer.codebook"]
    dist = (flat ** 2).sum(-1, keepdim=True) - 2 * flat @ book.t() + (book ** 2).sum(-1)[None]
    return torch.min(dist, dim=-1).indices.view(x.shape[0], -1)


def ref_decode_one(sd, codes):
    h = sd["quantizer.codebook"][codes].t()[None]
    h = F.relu(F.conv1d(h, sd["decoder.model.0.weight"], sd["decoder.model.0.bias"], padding=1))
    for s in (2, 3):
        h = _resnet(sd, f"decoder.model.{s}.0", h)
        h = F.interpolate(h, scale_factor=2.0, mode="nearest")
        h = F.conv1d(h, sd[f"decoder.model.{s}.2.weight"], sd[f"decoder.model.{s}.2.bias"], padding=1)
    h = F.relu(F.conv1d(h, sd["decoder.model.4.weight"], sd["decoder.model.4.bias"], padding=1))
    h = F.conv1d(h, sd["decoder.model.6.weight"], sd["decoder.model.6.bias"], padding=1)
    return h.permute(0, 2, 1)[0]


@pytest.fixture(scope="module")
def official_ckpt(tmp_path_factory):
    root = tmp_path_factory.mktemp("official")
    state = random_official_state()
    torch.save({"state_dict": state, "epoch": 499, "global_step": 1}, root / "tokenizer.ckpt")
    torch.save(torch.randn(179) * 0.3, root / "mean.pt")
    torch.save(torch.rand(179) + 0.5, root / "std.pt")
    return root, state


def test_import_gives_the_reference_codes_and_reconstructions(official_ckpt, tmp_path):
    root, state = official_ckpt
    ns = argparse.Namespace(tokenizer=str(root / "tokenizer.ckpt"), out=str(tmp_path / "ours.ckpt"), stats=str(root))
    assert import_official_cli.run(ns) == 0
    tok = SignTokenizer.from_checkpoint(tmp_path / "ours.ckpt")
    assert tok.codebook_sizes == {"body": 96, "lhand": 192, "rhand": 192} and tok.config["width"] == 512
    assert tokenizer_hash(tok) == tokenizer_hash(import_official(root / "tokenizer.ckpt", root))
    torch.manual_seed(0)
    x = torch.randn(2, 64, 133)
    codes = tok.encode(x)
    recon = tok.decode(codes)
    streams = SOKE_LAYOUT.split(x)
    for i, (prefix, part) in enumerate((("vae.", "body"), ("hand_vae.", "lhand"), ("rhand_vae.", "rhand"))):
        sd = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        ref_codes = ref_encode(sd, streams[part])
        assert torch.equal(codes[..., i], ref_codes), part
        assert len(set(ref_codes.flatten().tolist())) > 3  # the comparison is not between constant code maps
        ref_recon = torch.stack([ref_decode_one(sd, c) for c in ref_codes])
        assert (SOKE_LAYOUT.split(recon)[part] - ref_recon).abs().max() <= 1e-5, part
    # statistics came along, reduced 179 -> 133
    mean = torch.load(root / "mean.pt")
    assert torch.allclose(tok.normalizer.mean[:30], mean[36:66])


def test_imported_quantizers_are_initialised_and_not_reset_by_training(official_ckpt):
    root, state = official_ckpt
    tok = import_official(root / "tokenizer.ckpt").train()
    before = tok.vaes["body"].quantizer.codebook.clone()
    for vae in tok.vaes.values():
        assert bool(vae.quantizer.initialised)
        vae.quantizer.decay = 1.0 - 1e-9  # freeze EMA so only a re-initialisation could move live codes
    out = tok(torch.randn(1, 16, 133))
    used = out.parts["body"].quant.counts > 0
    assert torch.allclose(tok.vaes["body"].quantizer.codebook[used], before[used], atol=1e-6)


def test_mismatches_are_listed(official_ckpt, tmp_path):
    root, state = official_ckpt
    broken = dict(state)
    broken.pop("hand_vae.decoder.model.4.bias")
    broken["rhand_vae.encoder.model.0.weight"] = torch.zeros(512, 44, 3)
    broken["vae.encoder.model.9.weight"] = torch.zeros(1)
    torch.save({"state_dict": broken}, tmp_path / "broken.ckpt")
    with pytest.raises(OfficialFormatError) as err:
        import_official(tmp_path / "broken.ckpt")
    text = str(err.value)
    assert "vaes.lhand.decoder.model.4.bias" in text
    assert "vaes.rhand.encoder.model.0.weight: official (512, 44, 3) vs ours (512, 45, 3)" in text
    assert "vae.encoder.model.9.weight" in text
