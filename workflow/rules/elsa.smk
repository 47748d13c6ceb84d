# elsa rules (see docs/ARCHITECTURE.md)
