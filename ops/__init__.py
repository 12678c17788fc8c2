"""Operator tools for a deployed stack (docs/operations.md)."""
