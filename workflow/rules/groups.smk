# groups rules (see docs/ARCHITECTURE.md)
