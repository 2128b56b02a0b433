"""soke-lightning: SOKE (Signs as Tokens) text-to-sign generation as a Lightning framework."""
__version__ = "0.1.0"
