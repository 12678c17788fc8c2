"""Offline pipeline: a HealthImaging emulator, its wire adapters, seed data and the local runner."""
