"""SignTokenizer: parts from the layout registry, encode/decode, coupled baseline, checkpoints, resume, hash."""

import io

import pytest
import torch

from soke_lightning.core.layout import COUPLED_LAYOUT, SOKE_LAYOUT
from soke_lightning.models.tokenizer import CHECKPOINT_KEY, SignTokenizer, tokenizer_hash

TINY = dict(width=16, code_dim=8, depth=1, codebook_sizes={"body": 6, "lhand": 12, "rhand": 12})


def test_parts_follow_the_layout_registry():
    tok = SignTokenizer(**TINY)
    assert tok.parts == SOKE_LAYOUT.part_names
    assert tok.codebook_sizes == {"body": 6, "lhand": 12, "rhand": 12}
    assert tok.downsample_rate == 4
    for spec in SOKE_LAYOUT.parts:
        assert tok.part(spec.name).cfg.in_dim == spec.dim
    with pytest.raises(KeyError, match="unknown part 'face'"):
        tok.part("face")
    with pytest.raises(ValueError, match="codebook_sizes must name exactly"):
        SignTokenizer(width=16, code_dim=8, codebook_sizes={"body": 6})


def test_default_codebooks_are_soke_and_coupled_baseline():
    assert SignTokenizer(width=8, code_dim=8, depth=1).codebook_sizes == {"body": 96, "lhand": 192, "rhand": 192}
    coupled = SignTokenizer(layout="coupled", width=8, code_dim=8, depth=1)
    assert coupled.parts == COUPLED_LAYOUT.part_names and coupled.codebook_sizes == {"all": 512}
    assert coupled.part("all").cfg.in_dim == 133
    x = torch.randn(2, 40, 133)
    assert coupled.eval().encode(x).shape == (2, 10, 1)
    assert coupled.decode(coupled.encode(x)).shape == (2, 40, 133)


def test_encode_decode_shapes_and_part_access():
    torch.manual_seed(0)
    tok = SignTokenizer(**TINY).eval()
    x = torch.randn(3, 52, 133)
    codes = tok.encode(x, torch.tensor([52, 40, 44]))
    assert codes.shape == (3, 13, 3)
    for i, part in enumerate(tok.parts):
        assert int(codes[..., i].max()) < tok.codebook_sizes[part]
        stream = SOKE_LAYOUT.split(x)[part]
        assert torch.equal(tok.part(part).encode(stream), codes[..., i])
        assert torch.allclose(tok.part(part).decode(codes[..., i]), SOKE_LAYOUT.split(tok.decode(codes))[part])
    assert torch.allclose(tok.decode(codes), tok.decode({p: codes[..., i] for i, p in enumerate(tok.parts)}))
    assert tok.code_lengths(torch.tensor([52, 40])).tolist() == [13, 10]


def test_forward_reassembles_streams_and_sums_commitment():
    torch.manual_seed(0)
    tok = SignTokenizer(**TINY).train()
    out = tok(torch.randn(2, 40, 133), torch.tensor([40, 36]))
    assert out.recon.shape == (2, 40, 133)
    assert out.codes.shape == (2, 10, 3)
    total = sum(p.quant.commit_loss for p in out.parts.values())
    assert torch.allclose(out.commit_loss, total)


def _train(tok, opt, batches):
    for x in batches:
        out = tok(x, torch.full((x.shape[0],), x.shape[1]))
        loss = torch.nn.functional.smooth_l1_loss(out.recon, x) + 0.02 * out.commit_loss
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_save_load_one_more_step_is_bit_identical_and_keeps_codebooks(monkeypatch):
    torch.manual_seed(0)
    batches = [torch.randn(2, 24, 133) for _ in range(3)]
    torch.manual_seed(1)
    ref = SignTokenizer(**TINY).train()
    init = {k: v.clone() for k, v in ref.state_dict().items()}
    ref_opt = torch.optim.AdamW(ref.parameters(), lr=1e-3)
    _train(ref, ref_opt, batches)

    first = SignTokenizer(**TINY).train()
    first.load_state_dict(init)
    first_opt = torch.optim.AdamW(first.parameters(), lr=1e-3)
    _train(first, first_opt, batches[:2])
    buf = io.BytesIO()
    torch.save({"model": first.state_dict(), "opt": first_opt.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf)

    resumed = SignTokenizer(**TINY).train()
    resumed.load_state_dict(saved["model"])
    resumed_opt = torch.optim.AdamW(resumed.parameters(), lr=1e-3)
    resumed_opt.load_state_dict(saved["opt"])
    for vae in resumed.vaes.values():
        monkeypatch.setattr(vae.quantizer, "_initialise", lambda v: pytest.fail("codebook re-initialised"))
    _train(resumed, resumed_opt, batches[2:])
    for key, value in ref.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_from_checkpoint_is_strict_and_rebuilds_config(tmp_path):
    torch.manual_seed(0)
    tok = SignTokenizer(**TINY, activation="gelu")
    tok.train()(torch.randn(2, 16, 133))
    tok.normalizer.mean.normal_()
    path = tmp_path / "tok.ckpt"
    tok.save_checkpoint(path)
    back = SignTokenizer.from_checkpoint(path)
    assert back.config == tok.config and not back.training
    for k, v in tok.state_dict().items():
        assert torch.equal(v, back.state_dict()[k]), k
    assert tokenizer_hash(path) == tokenizer_hash(tok)

    ckpt = torch.load(path, weights_only=False)
    ckpt["state_dict"].pop("tokenizer.vaes.body.decoder.model.0.bias")
    ckpt["state_dict"]["tokenizer.vaes.body.extra"] = torch.zeros(1)
    torch.save(ckpt, tmp_path / "broken.ckpt")
    with pytest.raises(RuntimeError, match=r"missing \['vaes.body.decoder.model.0.bias'\].*unexpected \['vaes.body.extra'\]"):
        SignTokenizer.from_checkpoint(tmp_path / "broken.ckpt")
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")
    with pytest.raises(KeyError, match=CHECKPOINT_KEY):
        SignTokenizer.from_checkpoint(tmp_path / "other.ckpt")


def test_hash_ignores_training_state_but_not_weights():
    torch.manual_seed(0)
    tok = SignTokenizer(**TINY)
    h = tokenizer_hash(tok)
    tok.vaes["body"].quantizer.ema_count.add_(1)
    tok.vaes["body"].quantizer.num_updates.add_(5)
    assert tokenizer_hash(tok) == h
    tok.vaes["body"].quantizer.codebook[0, 0] += 1
    assert tokenizer_hash(tok) != h
