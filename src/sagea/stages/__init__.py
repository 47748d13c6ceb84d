"""Whole workflow jobs: read a stage's inputs, call the library, write its outputs (one call per rule script)."""
