"""An image set's metadata document, read as a stream into what the copy's decisions need.

A document can be 50 MB of JSON (HealthImaging's limit): a whole-slide image is one instance with
100,000s of frames, a 4D CT 10,000s of instances. `summarise` reads the body in chunks (gzip or not)
through ijson's incremental parser and keeps the Patient, Study and Series level elements and, when
the decision needs them (confirmation), each instance's SOPInstanceUID and a digest of its own
elements; frames (ImageFrames) and everything else are passed over without being built. Memory grows
with the number of instances by a UID and a digest each, and not at all with frames.

ijson's C backend (yajl2_c, in the bundle's wheel) parses; its pure-Python backend stands in where
no wheel carries the C one (slower, same answers). Errors name the failure's type, never the text:
the parser's messages quote the document, which holds PHI.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib
from collections.abc import Callable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache, partial
from types import ModuleType
from typing import Any, Protocol

import ijson
from aws_lambda_powertools import Logger

logger = Logger(child=True)

GZIP_MAGIC = b"\x1f\x8b"
CHUNK_BYTES = 64 * 1024
BACKENDS = ("yajl2_c", "python")  # the fastest first
_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"))  # built once: json.dumps builds one a call
OPENING = frozenset(("start_map", "start_array"))
CLOSING = frozenset(("end_map", "end_array"))

Events = Iterator[tuple[str, Any]]


class Readable(Protocol):
    def read(self, size: int | None = ..., /) -> bytes: ...


class UnreadableDocument(ValueError):
    """The body is not a gzip or plain JSON object, or it ends early. The message names no content."""


@dataclass(frozen=True)
class SeriesSummary:
    elements: Mapping[str, Any]  # the series-level DICOM elements
    # SOPInstanceUID -> digest of its own DICOM elements (None: not asked for); None: instances not read.
    instances: Mapping[str, bytes | None] | None

    def instance_digests(self) -> Mapping[str, bytes | None]:
        if self.instances is None:  # a programming error: the decision asked for less than it reads
            raise LookupError("this metadata was read without its instances")
        return self.instances


@dataclass(frozen=True)
class MetadataSummary:
    """What the decisions read from one document: element values at the Patient, Study and Series
    levels and, if asked for, each instance's UID and the digest of its elements (equal elements,
    equal digests)."""

    patient: Mapping[str, Any]
    study: Mapping[str, Any]
    series: Mapping[str, SeriesSummary]  # SeriesInstanceUID (its key under Study.Series) -> its summary


@lru_cache(maxsize=1)
def parser() -> ModuleType:
    """ijson's fastest backend here, said once per environment."""
    for name in BACKENDS:
        try:
            backend = ijson.get_backend(name)
        except ImportError:
            continue
        if name == BACKENDS[0]:
            logger.info("Metadata parser", extra={"jsonParser": name})
        else:
            logger.warning("Metadata parser without its C backend: slower", extra={"jsonParser": name})
        return backend
    raise ImportError("ijson has no backend here")  # the pure-Python one is always there


def summarise(
    body: Readable, *, gzipped: bool, instances: bool, digests: AbstractSet[str] | None = None
) -> MetadataSummary:
    """Read a GetImageSetMetadata body to its end. `gzipped`: its contentEncoding said gzip (a body
    starting with gzip's magic bytes is taken as gzip too). `instances`: read each instance's
    SOPInstanceUID and the digest of its elements (confirmation needs them; the Patient, Study and
    Series levels alone read twice as fast); `digests`: only these instances' elements are digested,
    the others' digest is None (a decision about a few instances of a large image set reads the rest
    at the levels' pace). UnreadableDocument if it is not a JSON object; the body's own errors (a
    connection lost mid-read) pass through."""
    head = body.read(len(GZIP_MAGIC))
    rejoined = _Rejoined(head, body)
    stream: Readable = rejoined
    if gzipped or head == GZIP_MAGIC:
        # typeshed asks the file for seek(), which GzipFile calls only to rewind; reading never does.
        stream = gzip.GzipFile(fileobj=rejoined, mode="rb")  # type: ignore[call-overload]
    # Not use_float: with it the C backend refuses integers beyond 64 bits, which json.loads reads (_number).
    events: Events = parser().basic_parse(stream, buf_size=CHUNK_BYTES)
    try:
        return _document(events, _series_reader(instances, digests))
    # Not OSError as a whole: botocore's ReadTimeoutError is one, and a timeout is the network's, not the document's.
    except (ijson.JSONError, gzip.BadGzipFile, zlib.error, EOFError, StopIteration) as error:
        raise UnreadableDocument(f"metadata document unreadable ({type(error).__name__})") from None


class _Rejoined:
    """The body again from its first bytes, which were read to recognise gzip."""

    def __init__(self, head: bytes, rest: Readable) -> None:
        self._head = head
        self._rest = rest

    def read(self, size: int | None = -1, /) -> bytes:
        size = -1 if size is None else size
        if not self._head:
            return self._rest.read(None if size < 0 else size)
        if 0 <= size <= len(self._head):
            chunk, self._head = self._head[:size], self._head[size:]
            return chunk
        head, self._head = self._head, b""
        return head + self._rest.read(None if size < 0 else size - len(head))


Reader = Callable[[Events, str, Any], Any]


def _document(events: Events, series: Reader) -> MetadataSummary:
    event, value = next(events)
    if event != "start_map":
        raise UnreadableDocument("metadata document is not a JSON object")
    study_readers = {"DICOM": _elements, "Series": _map_of(series)}
    read = _members(events, event, value, {"Patient": _level, "Study": partial(_members, readers=study_readers)})
    for _ in events:  # read to the end: a body cut short or with more after the document is an error
        raise UnreadableDocument("metadata document has data after its end")
    study = read.get("Study", {})
    return MetadataSummary(
        patient=read.get("Patient", {}).get("DICOM", {}),
        study=study.get("DICOM", {}),
        series=study.get("Series", {}),
    )


def _members(events: Events, event: str, value: Any, readers: Mapping[str, Reader]) -> dict[str, Any]:
    """The members of the map that began with `event` that `readers` names, each read by its reader;
    the others are skipped. A value that is not a map has none."""
    found: dict[str, Any] = {}
    if event != "start_map":
        _skip(events, event, value)
        return found
    for key in _keys(events):
        event, value = next(events)
        reader = readers.get(key)
        if reader is None:
            _skip(events, event, value)
        else:
            found[key] = reader(events, event, value)  # a key given twice: the last, as json.loads keeps
    return found


def _map_of(reader: Reader) -> Reader:
    """A reader of a map whose every member `reader` reads."""

    def read(events: Events, event: str, value: Any) -> dict[str, Any]:
        if event != "start_map":
            _skip(events, event, value)
            return {}
        return {key: reader(events, *next(events)) for key in _keys(events)}

    return read


def _elements(events: Events, event: str, value: Any) -> Mapping[str, Any]:
    elements = _value(events, event, value)
    return elements if isinstance(elements, dict) else {}


def _level(events: Events, event: str, value: Any) -> dict[str, Any]:
    return _members(events, event, value, {"DICOM": _elements})


def _series_reader(instances: bool, digests: AbstractSet[str] | None) -> Reader:
    readers: dict[str, Reader] = {"DICOM": _elements}
    if instances:
        readers["Instances"] = partial(_instances, digests=digests)

    def read(events: Events, event: str, value: Any) -> SeriesSummary:
        found = _members(events, event, value, readers)
        return SeriesSummary(
            elements=found.get("DICOM", {}), instances=found.get("Instances", {}) if instances else None
        )

    return read


def _instances(events: Events, event: str, value: Any, *, digests: AbstractSet[str] | None) -> dict[str, bytes | None]:
    """SOPInstanceUID -> the digest of the instance's elements (None: not among `digests`)."""
    found: dict[str, bytes | None] = {}
    if event != "start_map":
        _skip(events, event, value)
        return found
    for sop in _keys(events):
        event, value = next(events)
        if digests is None or sop in digests:
            found[sop] = _instance_digest(events, event, value)
        else:
            _skip(events, event, value)
            found[sop] = None
    return found


def _instance_digest(events: Events, event: str, value: Any) -> bytes:
    """The digest of an instance's own DICOM elements; its frames and the rest are skipped unbuilt."""
    found = _members(events, event, value, {"DICOM": partial(_value, canonical=True)})
    elements = found.get("DICOM", {})
    return hashlib.blake2b(_CANONICAL_JSON.encode(elements).encode(), digest_size=16).digest()


def _keys(events: Events) -> Iterator[str]:
    """The keys of the map just opened; the caller reads (or skips) each key's value before the next."""
    for event, value in events:
        if event == "end_map":
            return
        yield value


def _skip(events: Events, event: str, _: Any = None) -> None:
    """Pass over the value that began with `event`, building nothing."""
    if event not in OPENING:
        return
    depth = 1
    for inner, _ in events:
        if inner in OPENING:
            depth += 1
        elif inner in CLOSING:
            depth -= 1
            if not depth:
                return


def _value(events: Events, first: str, first_value: Any, *, canonical: bool = False) -> Any:
    """The value that began with event `first`, as json.loads builds it (iteratively: the loop runs for every
    element of every instance). `canonical`: numbers Python holds equal take one form (1, 1.0 and
    true are all 1), so that equal values digest equally."""
    if first not in OPENING:
        return _scalar(first, first_value, canonical)
    root: Any = {} if first == "start_map" else []
    open_values: list[Any] = [root]
    key = None
    item: Any
    for event, value in events:
        if event == "map_key":
            key = value
            continue
        if event in CLOSING:
            open_values.pop()
            if not open_values:
                return root
            continue
        if event in OPENING:
            item = {} if event == "start_map" else []
        elif canonical:  # inline, not _scalar: this runs for every element of every instance digested
            item = float(value) if type(value) is Decimal else value
            if event == "boolean" or (type(item) is float and item.is_integer()):
                item = int(item)
        elif type(value) is Decimal:
            item = float(value)
        else:
            item = value
        parent = open_values[-1]
        if type(parent) is dict:
            parent[key] = item
        else:
            parent.append(item)
        if event in OPENING:
            open_values.append(item)
    raise UnreadableDocument("metadata document ends inside a value")


def _scalar(event: str, value: Any, canonical: bool) -> Any:
    """A number as json.loads gives it (ijson gives a non-integer as a Decimal: the float of its text).
    `canonical`: see _value."""
    if type(value) is Decimal:
        value = float(value)
    if canonical and (event == "boolean" or (type(value) is float and value.is_integer())):
        return int(value)
    return value
