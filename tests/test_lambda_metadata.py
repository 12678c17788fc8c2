"""Metadata documents read as a stream (copier/metadata.py): what the whole document says, in memory that
does not grow with frames and grows with instances by a UID and a digest each; errors that quote nothing."""

from __future__ import annotations

import gzip
import io
import json
import tracemalloc
from collections.abc import Callable
from itertools import combinations
from typing import Any

import ijson
import pytest
from botocore.exceptions import ReadTimeoutError
from botocore.response import StreamingBody
from function_stubs import DATASTORE, SOURCE, Function
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from copier import dicom, metadata
from offline import seed


def summary_of(document: Any, *, gzipped: bool = True, instances: bool = True) -> metadata.MetadataSummary:
    text = json.dumps(document).encode()
    return metadata.summarise(
        io.BytesIO(gzip.compress(text) if gzipped else text), gzipped=gzipped, instances=instances
    )


# --- the same answers as the whole document --------------------------------------------------------------
# JSON values, with the numbers Python holds equal across types (1, 1.0, True) and nesting.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.sampled_from([0, 1, -1, 1.0, -0.0, 0.5, 1e20, 2**64])
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("ABC"), inner, max_size=3),
    max_leaves=6,
)
elements = st.dictionaries(
    st.sampled_from(["PatientID", "Modality", "Rows", "SequenceOfItems"]), json_values, max_size=3
)
# Instance elements that are equal, or nearly, in ways a digest could get wrong.
alike = st.sampled_from(
    [
        {"Rows": 1, "Seq": [{"A": 0, "B": "x"}]},
        {"Seq": [{"B": "x", "A": 0.0}], "Rows": True},
        {"Rows": 1.0, "Seq": [{"A": -0.0, "B": "x"}]},
        {"Rows": "1", "Seq": [{"A": 0, "B": "x"}]},
        {"Rows": 1, "Seq": [{"A": 0, "B": "x", "C": None}]},
        {"Rows": 1, "Seq": [{"A": 0}, {"B": "x"}]},
        {"Rows": 2**64, "Seq": []},
        {"Rows": 2.0**64, "Seq": []},
        {"Rows": 2**64 + 1, "Seq": []},
    ]
)
frames = st.lists(st.fixed_dictionaries({"ID": st.text(max_size=4), "FrameSizeInBytes": st.integers(0, 9)}), max_size=3)
instance = st.fixed_dictionaries(
    {"DICOM": elements | alike, "ImageFrames": frames, "StoredTransferSyntaxUID": st.text(max_size=2)}
)
series = st.fixed_dictionaries({"DICOM": elements, "Instances": st.dictionaries(st.sampled_from("abcdef"), instance)})
documents = st.fixed_dictionaries(
    {
        "SchemaVersion": st.just("1.1"),
        "Patient": st.fixed_dictionaries({"DICOM": elements}),
        "Study": st.fixed_dictionaries(
            {"DICOM": elements, "Series": st.dictionaries(st.sampled_from(["1.2", "1.3", "1.4"]), series, max_size=3)}
        ),
    }
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_the_summary_holds_what_the_whole_document_says(document: dict[str, Any]) -> None:
    whole = json.loads(json.dumps(document))  # what the function read before: json.loads of the body
    summary = summary_of(document)

    assert summary.patient == whole["Patient"]["DICOM"]
    assert summary.study == whole["Study"]["DICOM"]
    assert list(summary.series) == list(whole["Study"]["Series"])
    own: dict[tuple[str, str], Any] = {}
    for uid, held in whole["Study"]["Series"].items():
        assert summary.series[uid].elements == held["DICOM"]
        assert list(summary.series[uid].instance_digests()) == list(held["Instances"])
        own |= {(uid, sop): value["DICOM"] for sop, value in held["Instances"].items()}
    digests = {(uid, sop): summary.series[uid].instance_digests()[sop] for uid, sop in own}
    # Equal digests exactly when the instances' elements are equal as Python compares them.
    for left, right in combinations(own, 2):
        assert (digests[left] == digests[right]) == (own[left] == own[right]), (own[left], own[right])


def test_a_copy_of_the_elements_with_other_key_order_and_number_forms_digests_the_same() -> None:
    elements = {"Rows": 512, "PixelSpacing": [0.5, 0.5], "Sequence": [{"B": True, "A": 1}]}
    reordered = {"Sequence": [{"A": 1.0, "B": 1}], "PixelSpacing": [0.5, 0.5], "Rows": 512.0}
    changed = {"Rows": 512, "PixelSpacing": [0.5, 0.5], "Sequence": [{"B": True, "A": 2}]}
    instances = {"a": {"DICOM": elements}, "b": {"DICOM": reordered}, "c": {"DICOM": changed}}
    document = {"Study": {"Series": {"1.2": {"Instances": instances}}}}
    digests = summary_of(document).series["1.2"].instance_digests()
    assert digests["a"] == digests["b"] != digests["c"]


# --- the body as it comes ----------------------------------------------------------------------------------
class Trickle:
    """A body that hands out at most a few bytes a read, as a slow network does."""

    def __init__(self, data: bytes, most: int = 7) -> None:
        self._data = io.BytesIO(data)
        self._reads = 0
        self._most = most

    def read(self, size: int | None = -1, /) -> bytes:
        self._reads += 1
        return self._data.read(min(self._most, 1 + self._reads % self._most) if size is None or size < 0 else size)


DOCUMENT = seed.image_set_metadata(patient_number=1, study=1, series=[1, 2], instances_per_series=3)


@pytest.mark.parametrize(
    ("encoded", "gzipped"),
    [
        (gzip.compress, True),  # contentEncoding gzip
        (gzip.compress, False),  # no contentEncoding, gzip all the same: its magic bytes
        (lambda text: text, False),  # plain JSON
    ],
    ids=["gzip", "gzip-unannounced", "plain"],
)
@pytest.mark.parametrize(
    "wrap",
    [
        lambda data: StreamingBody(io.BytesIO(data), len(data)),
        Trickle,
        lambda data: Trickle(data, most=1),
    ],
    ids=["streaming-body", "trickle", "byte-by-byte"],
)
def test_every_body_gives_the_same_summary(
    encoded: Callable[[bytes], bytes], gzipped: bool, wrap: Callable[[bytes], Any]
) -> None:
    data = encoded(json.dumps(DOCUMENT).encode())
    assert metadata.summarise(wrap(data), gzipped=gzipped, instances=True) == summary_of(DOCUMENT, gzipped=False)


def test_instances_are_read_only_when_asked_for() -> None:
    levels = summary_of(DOCUMENT, instances=False)
    assert levels.patient == DOCUMENT["Patient"]["DICOM"] and sorted(levels.series) == sorted(
        DOCUMENT["Study"]["Series"]
    )
    assert all(series.instances is None for series in levels.series.values())
    with pytest.raises(LookupError, match="without its instances"):
        dicom.selection(levels, None)


def test_only_the_instances_asked_for_are_digested_and_a_decision_cannot_use_the_others() -> None:
    everything = summary_of(DOCUMENT)
    uid = sorted(DOCUMENT["Study"]["Series"])[0]
    one, other = sorted(DOCUMENT["Study"]["Series"][uid]["Instances"])[:2]
    text = json.dumps(DOCUMENT).encode()
    some = metadata.summarise(io.BytesIO(text), gzipped=False, instances=True, digests={one})

    assert {sop: digest is not None for sop, digest in some.series[uid].instance_digests().items()} == {
        sop: sop == one for sop in everything.series[uid].instance_digests()
    }
    assert some.series[uid].instance_digests()[one] == everything.series[uid].instance_digests()[one]
    assert dicom.holds_instances(some, everything, {uid: frozenset({one})})
    with pytest.raises(LookupError, match="without its digest"):
        dicom.holds_instances(some, everything, {uid: frozenset({one, other})})


# --- memory: not with frames, with instances by a UID and a digest -----------------------------------------
def traced_peak(document: dict[str, Any], *, instances: bool) -> int:
    body = gzip.compress(json.dumps(document).encode(), compresslevel=1)
    del document
    tracemalloc.start()
    try:
        summary = metadata.summarise(io.BytesIO(body), gzipped=True, instances=instances)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        del summary


def slide(frames: int) -> dict[str, Any]:
    return seed.slide_image_set_metadata(patient_number=1, study=1, series=1, frames=frames)


def ct(instances: int) -> dict[str, Any]:
    return seed.ct_image_set_metadata(patient_number=1, study=1, series=1, instances=range(1, instances + 1))


# Both sizes of each pair have a gzip body larger than the reader's buffers (which fill up to a bound).
def test_memory_does_not_grow_with_frames() -> None:
    few, many = traced_peak(slide(10_000), instances=True), traced_peak(slide(50_000), instances=True)
    assert many < 2 * 1024 * 1024  # 50,000 frames are 10 MB of JSON, ~25 MB once parsed
    assert many - few < 64 * 1024, (few, many)


def test_memory_grows_with_instances_by_their_uids_and_digests_only() -> None:
    added = 8_000
    for instances, most_per_instance in ((False, 0), (True, 256)):
        few, many = traced_peak(ct(4_000), instances=instances), traced_peak(ct(4_000 + added), instances=instances)
        assert many - few < 64 * 1024 + added * most_per_instance, (instances, few, many)


# --- what goes wrong, said without the document's content ---------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [
        b'{"Patient": {"DICOM": {"PatientName": "SYNTHETIC^LEAK"}',  # cut short
        b'{"Patient": {"DICOM": {"PatientName": "SYNTHETIC^LEAK" x}}}',  # not JSON
        b'{"Patient": {"DICOM": {"PatientName": "SYNTHETIC^LEAK"}}} {}',  # more after the document
        b'["SYNTHETIC^LEAK"]',  # not an object
        b"",
        gzip.compress(b'{"Patient": {"DICOM": {"PatientName": "SYNTHETIC^LEAK"}}}')[:-9],  # gzip cut short
        b"\x1f\x8b" + b"SYNTHETIC^LEAK" * 3,  # gzip magic, then no gzip
    ],
    ids=["cut-short", "not-json", "trailing-data", "not-an-object", "empty", "gzip-cut-short", "bad-gzip"],
)
def test_an_unreadable_document_is_said_without_its_content(body: bytes) -> None:
    with pytest.raises(metadata.UnreadableDocument) as raised:
        metadata.summarise(io.BytesIO(body), gzipped=False, instances=True)
    assert "SYNTHETIC" not in str(raised.value) and "LEAK" not in str(raised.value)


# --- the parser ---------------------------------------------------------------------------------------------
def test_the_c_backend_parses_where_its_wheel_is_installed() -> None:
    # The dev environment installs the same ijson wheel family as the bundle (tests/test_function_bundle.py
    # checks the bundle's has the aarch64 CPython 3.13 build of it).
    assert metadata.parser().backend_name == "yajl2_c"


def test_without_the_c_backend_the_pure_python_one_reads_the_same(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = ijson.get_backend

    def without_c(name: str) -> Any:
        if name == "yajl2_c":
            raise ImportError("no C extension here")
        return real(name)

    expected = summary_of(DOCUMENT)
    metadata.parser.cache_clear()
    monkeypatch.setattr(ijson, "get_backend", without_c)
    try:
        assert metadata.parser().backend_name == "python"
        assert summary_of(DOCUMENT) == expected
    finally:
        metadata.parser.cache_clear()
    (said,) = [record for record in caplog.records if hasattr(record, "jsonParser")]
    assert (said.levelname, said.jsonParser) == ("WARNING", "python")


# --- through the function's client -------------------------------------------------------------------------
def answer(function: Function, body: Any) -> None:
    function.reads.add_response(
        "get_image_set_metadata",
        {"imageSetMetadataBlob": body, "contentType": "application/json", "contentEncoding": "gzip"},
        {"datastoreId": DATASTORE, "imageSetId": SOURCE},
    )


class TimesOut(io.BytesIO):
    """A body whose connection times out half-way."""

    def read(self, size: int | None = -1, /) -> bytes:
        if self.tell() > len(self.getvalue()) // 2:
            raise ReadTimeoutError(endpoint_url="https://medical-imaging.us-east-1.amazonaws.com")
        return super().read(64 if size is None or size < 0 else min(size, 64))


def test_get_metadata_reads_the_body_as_a_stream(function: Function) -> None:
    blob = gzip.compress(json.dumps(DOCUMENT).encode())
    answer(function, StreamingBody(io.BytesIO(blob), len(blob)))
    got = function.modules.healthimaging.get_metadata(DATASTORE, SOURCE, instances=True)
    assert dicom.series_uids(got) == sorted(DOCUMENT["Study"]["Series"])
    assert got.patient == DOCUMENT["Patient"]["DICOM"]


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (TimesOut, "no answer"),  # the connection times out mid-body
        (lambda blob: StreamingBody(io.BytesIO(blob[: len(blob) // 2]), len(blob)), "no answer"),  # body cut short
        (lambda blob: StreamingBody(io.BytesIO(b"\x1f\x8b" + blob[9:]), len(blob) - 7), "metadata document unreadable"),
    ],
    ids=["read-timeout", "incomplete-body", "corrupt"],
)
def test_a_body_that_fails_mid_read_is_transient_and_names_ids_only(
    function: Function, body: Callable[[bytes], Any], said: str
) -> None:
    blob = gzip.compress(json.dumps(DOCUMENT).encode())
    answer(function, body(blob))
    with pytest.raises(function.modules.errors.HealthImagingUnavailable) as raised:
        function.modules.healthimaging.get_metadata(DATASTORE, SOURCE, instances=True)
    message = str(raised.value)
    assert message.startswith(f"GetImageSetMetadata {SOURCE}: {said}") and "SYNTHETIC" not in message
