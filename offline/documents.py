"""How the emulator keeps image set metadata documents, and the body GetImageSetMetadata sends.

HealthImaging's operations take or replace whole instances and never look inside one, so a kept
document has its Patient, Study and Series levels as parsed JSON and each instance as its JSON text
(`StoredInstance`): a document costs about 1.2 times its JSON (parsed: 2.4 times for seed.py's CT,
more for real ones), a whole-slide image's 100,000 frames one string. Versions and copies share
instances (they are immutable: deepcopy returns them as they are). The gzip body is written in
pieces, instance by instance, without the whole JSON text at once.
"""

from __future__ import annotations

import copy as copying
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

GZIP_WBITS = zlib.MAX_WBITS | 16
_COMPACT = json.JSONEncoder(separators=(",", ":"))


@dataclass(frozen=True)
class StoredInstance:
    """One instance of a kept document, as its compact JSON text."""

    text: str

    def __deepcopy__(self, memo: dict[int, Any]) -> StoredInstance:
        return self  # immutable: copies of a document share it


def stored(document: dict[str, Any]) -> dict[str, Any]:
    """The document as the emulator keeps it: a copy of its levels, each instance as its JSON text."""
    return _stored(document, ())


def _stored(value: Any, path: tuple[str, ...]) -> Any:
    if len(path) == 5 and path[:2] == ("Study", "Series") and path[3] == "Instances":  # Study.Series.*.Instances.*
        return StoredInstance(_COMPACT.encode(value))
    if isinstance(value, dict):
        return {key: _stored(item, (*path, key)) for key, item in value.items()}
    return copying.deepcopy(value)


def gzip_body(document: dict[str, Any]) -> bytes:
    """The document as GetImageSetMetadata sends it: compact JSON, gzip."""
    compressor = zlib.compressobj(level=6, wbits=GZIP_WBITS)
    parts = [compressor.compress(piece.encode()) for piece in _json_pieces(document)]
    parts.append(compressor.flush())
    return b"".join(parts)


def _json_pieces(value: Any) -> Iterator[str]:
    if isinstance(value, StoredInstance):
        yield value.text
    elif isinstance(value, dict):
        yield "{"
        for index, (key, item) in enumerate(value.items()):
            yield f"{',' if index else ''}{_COMPACT.encode(key)}:"
            yield from _json_pieces(item)
        yield "}"
    else:
        yield _COMPACT.encode(value)
