"""Every output the suite captured (test sections, the local pipeline's logs), read by tests/test_zz_no_phi.py."""

from __future__ import annotations

CAPTURED_OUTPUT: list[str] = []
