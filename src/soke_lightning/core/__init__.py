"""The lowest layer: the feature layout, the language registry, the batch type, shared small types, io helpers.

Everything else may import it; it imports nothing of the package but itself (docs/design.md §1).
"""
