"""Pure PyTorch models: part VQ-VAEs, the EMA-reset quantizer and the sign tokenizer (no Lightning, no paths)."""

from soke_lightning.models.quantizer import EMAResetQuantizer, QuantizerOutput
from soke_lightning.models.tokenizer import SignTokenizer, TokenizerOutput, tokenizer_hash
from soke_lightning.models.vqvae import VQVAE, VQVAEConfig, VQVAEOutput

__all__ = ["EMAResetQuantizer", "QuantizerOutput", "SignTokenizer", "TokenizerOutput", "VQVAE", "VQVAEConfig",
           "VQVAEOutput", "tokenizer_hash"]
