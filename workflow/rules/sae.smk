# sae rules (see docs/ARCHITECTURE.md)
