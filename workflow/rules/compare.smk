# compare rules (see docs/ARCHITECTURE.md)
