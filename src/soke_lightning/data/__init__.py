"""Data: pose layout, language registry, official corpus readers, packed store, SynthSign, DataModule."""

from soke_lightning.core.layout import FEATURE_DIM, RAW_DIM, SOKE_LAYOUT, features_to_raw, raw_to_features
from soke_lightning.data.store import PackedStore, Sample, StoreError, StoreWriter, open_store

__all__ = [
    "FEATURE_DIM",
    "RAW_DIM",
    "SOKE_LAYOUT",
    "PackedStore",
    "Sample",
    "StoreError",
    "StoreWriter",
    "features_to_raw",
    "open_store",
    "raw_to_features",
]
