"""sagea: sparse-autoencoder group recommendation (SAGEA), as a library behind the workflow."""

__version__ = "0.1.0"
