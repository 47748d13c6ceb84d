# report rules (see docs/ARCHITECTURE.md)
