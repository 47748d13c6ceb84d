# data rules (see docs/ARCHITECTURE.md)
