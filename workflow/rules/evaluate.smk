# evaluate rules (see docs/ARCHITECTURE.md)
