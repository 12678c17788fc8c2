"""Operator tools for a deployed stack (README, "Operating it")."""
