"""Part VQ-VAE: shapes over the length range, configurable sizes, straight-through gradients, padding."""

import pytest
import torch

from soke_lightning.models.vqvae import VQVAE, VQVAEConfig


def tiny(**kw):
    base = dict(in_dim=7, codebook_size=16, width=16, code_dim=8, depth=2)
    base.update(kw)
    return VQVAE(VQVAEConfig(**base))


@pytest.mark.parametrize("length", [40, 44, 128, 400])
def test_shapes_for_lengths_40_to_400(length):
    torch.manual_seed(0)
    vae = tiny().train()
    x = torch.randn(2, length, 7)
    out = vae(x, torch.tensor([length, length - 4]))
    assert out.recon.shape == (2, length, 7)
    assert out.quant.codes.shape == (2, length // 4)
    assert out.code_mask.sum(1).tolist() == [length // 4, length // 4 - 1]
    vae.eval()
    codes = vae.encode(x)
    assert codes.shape == (2, length // 4) and codes.dtype == torch.long
    assert vae.decode(codes).shape == (2, length, 7)


@pytest.mark.parametrize("kw,rate", [(dict(down_t=3), 8), (dict(down_t=1, stride_t=4), 4), (dict(down_t=0), 1)])
def test_downsampling_is_configurable(kw, rate):
    vae = tiny(**kw)
    assert vae.downsample_rate == rate
    out = vae(torch.randn(1, 48, 7))
    assert out.recon.shape == (1, 48, 7) and out.quant.codes.shape == (1, 48 // rate)


@pytest.mark.parametrize("norm", ["none", "batch", "group", "layer"])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_norms_and_activations(norm, activation):
    vae = tiny(norm=norm, activation=activation)
    assert vae(torch.randn(2, 16, 7)).recon.shape == (2, 16, 7)


def test_bad_config_and_inputs_fail_clearly():
    with pytest.raises(ValueError, match="activation"):
        VQVAEConfig(activation="tanh")
    with pytest.raises(ValueError, match="norm"):
        VQVAEConfig(norm="weird")
    with pytest.raises(ValueError, match="multiple of the down-sampling rate 4"):
        tiny()(torch.randn(1, 42, 7))
    with pytest.raises(ValueError, match=r"\[B, T, 7\]"):
        tiny()(torch.randn(1, 40, 8))


def test_straight_through_gradient_reaches_the_encoder():
    torch.manual_seed(0)
    vae = tiny().train()
    out = vae(torch.randn(2, 40, 7))
    out.recon.sum().backward()
    assert vae.encoder.model[0].weight.grad is not None
    assert vae.encoder.model[0].weight.grad.abs().sum() > 0


def test_dilations_are_reversed_like_the_reference():
    vae = tiny(depth=3)
    res = vae.encoder.model[2][1].model
    assert [b.conv1.dilation[0] for b in res] == [9, 3, 1]
    assert [b.conv1.padding[0] for b in res] == [9, 3, 1]


def test_padded_steps_never_enter_the_code_counts():
    torch.manual_seed(0)
    padded = torch.cat([torch.randn(1, 40, 7), torch.randn(1, 8, 7) * 100], dim=1)
    out = tiny()(padded, torch.tensor([40]))
    assert float(out.quant.counts.sum()) == 10
    reference = tiny(mask_padding=False)(padded, torch.tensor([40]))
    assert float(reference.quant.counts.sum()) == 12
