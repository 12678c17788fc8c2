"""Each step that reads metadata documents: time and peak memory, before and after reading them as a stream.

Documents: CT series of 1, 10 and 55 MB of JSON (seed.ct_image_set_metadata, ~610 bytes an instance:
1,640, 16,400 and 90,000 instances), and a whole-slide image of 100,000 frames (20 MB). Every document
a step reads is that size: the source; the destination (other instances of the series, another
StudyDescription); the version a copy produced, or the new image set (the source's instances).

The steps, as the function runs them (StartCopy and CheckCopy judge a refusal or a COPY_FAILED alike):
- ResolveDestination (merge-into-primary): the source's study and series;
- judge COPY_FAILED: the source's and the destination's Patient/Study/Series elements;
- AuthoriseForce: the same, and patient identity (forcePolicy same-patient);
- ConfirmCopy into an existing image set: the source's instances, then the baseline's, then the
  expected version's, one destination document at a time;
- ConfirmCopy into a new image set: the source's instances and the candidate's.

After: the function's own code (copier.*): HealthImaging and DynamoDB answered by stand-ins, each
body read from gzip bytes in memory as a StreamingBody. Before: the whole-document reading the
function did until it streamed (gzip.decompress + json.loads, decisions on the dicts), kept here only
as this baseline. Each step, size and way runs in a fresh interpreter that imports the whole handler
first (as a cold start does): CPU time (the step is single-threaded: its wall time on an idle machine;
on this shared one, CPU time is what repeats) and peak RSS (VmHWM: the process, as Lambda's memory
limit counts it) of one run, then the tracemalloc peak of a second run (Python's allocations in the step).

    python -m benchmarks.metadata [--sizes 1,10,55] [--no-slide]
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import record
from benchmarks.handler_import import ENV as FUNCTION_ENV

ROOT = Path(__file__).resolve().parent.parent
DATASTORE = FUNCTION_ENV["DATASTORE_ID"]
SOURCE, DESTINATION, NEW = "a" * 32, "b" * 32, "c" * 32
ENV = {**FUNCTION_ENV, "POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_NAMESPACE": "HealthImagingCopy"}
BYTES_PER_INSTANCE = 608.5  # seed.ct_image_set_metadata's, compact JSON
SLIDE_FRAMES = 100_000
STEPS = ("ResolveDestination", "judge COPY_FAILED", "AuthoriseForce", "ConfirmCopy existing", "ConfirmCopy new")


# --- the documents ------------------------------------------------------------------------------------------
def write_documents(directory: Path, kind: str, megabytes: float) -> None:
    from offline import seed

    def document(part: int, **differences: str) -> dict[str, Any]:
        if kind == "slide":
            return seed.slide_image_set_metadata(
                patient_number=1, study=1, series=1, instance=part + 1, frames=SLIDE_FRAMES, **differences
            )
        count = round(megabytes * 1e6 / BYTES_PER_INSTANCE)
        instances = range(part * count + 1, (part + 1) * count + 1)
        return seed.ct_image_set_metadata(patient_number=1, study=1, series=1, instances=instances, **differences)

    for name, made in (("source", document(0, study_description="SYNTHETIC MR")), ("destination", document(1))):
        text = json.dumps(made, separators=(",", ":")).encode()
        (directory / f"{name}.json.gz").write_bytes(gzip.compress(text, compresslevel=6))
        (directory / f"{name}.size").write_text(str(len(text)))


# --- before: the whole-document reading, as the function did it (the baseline only) --------------------------
def whole_document(blob: bytes) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob)
    return document


def _series(document: dict[str, Any]) -> dict[str, Any]:
    series = document.get("Study", {}).get("Series", {})
    return series if isinstance(series, dict) else {}


def _elements(document: dict[str, Any], level: str) -> dict[str, Any]:
    elements = document.get(level, {}).get("DICOM", {})
    return elements if isinstance(elements, dict) else {}


def _selection(document: dict[str, Any]) -> dict[str, set[str]]:
    return {uid: set(series.get("Instances", {})) for uid, series in _series(document).items()}


def _instance_elements(document: dict[str, Any]) -> dict[str, Any]:
    return {
        sop: instance.get("DICOM", {})
        for series in _series(document).values()
        for sop, instance in series.get("Instances", {}).items()
    }


def _holds(destination: dict[str, Any], source: dict[str, Any], chosen: dict[str, set[str]]) -> bool:
    held, own = _instance_elements(destination), _instance_elements(source)
    return all(sop in held and held[sop] == own.get(sop) for sops in chosen.values() for sop in sops)


def _inconsistent(source: dict[str, Any], destination: dict[str, Any], series: list[str]) -> list[str]:
    names: set[str] = set()
    pairs = [(_elements(source, level), _elements(destination, level)) for level in ("Patient", "Study")]
    for uid in set(series) & set(_series(destination)):
        pairs.append((_series(source).get(uid, {}).get("DICOM", {}), _series(destination)[uid].get("DICOM", {})))
    for left, right in pairs:
        names.update(name for name in set(left) & set(right) if left[name] != right[name])
    return sorted(names)


def before(step: str, blobs: dict[str, bytes]) -> object:
    from copier import dicom
    from copier.metadata import MetadataSummary

    def identity(source: dict[str, Any], destination: dict[str, Any]) -> list[str]:
        def patient(document: dict[str, Any]) -> MetadataSummary:
            return MetadataSummary(patient=_elements(document, "Patient"), study={}, series={})

        return dicom.identity_differences(patient(source), patient(destination))  # the same rules

    if step == "ResolveDestination":
        document = whole_document(blobs["source"])
        series = sorted(_series(document))
        return f"search series {series[0]}" if _elements(document, "Study").get("StudyInstanceUID") else "invalid"
    source = whole_document(blobs["source"])
    if step in ("judge COPY_FAILED", "AuthoriseForce"):
        destination = whole_document(blobs["destination"])
        names = _inconsistent(source, destination, list(_selection(source)))
        if step == "judge COPY_FAILED":
            return f"InconsistentMetadata: {', '.join(names)}" if names else "CopyFailed"
        differing = identity(source, destination)
        return f"ForceRefused: {', '.join(differing)}" if differing else f"authorised ({', '.join(names)})"
    chosen = _selection(source)
    if step == "ConfirmCopy existing":
        if _holds(whole_document(blobs["destination"]), source, chosen):
            return "undecided"
        return "ours" if _holds(whole_document(blobs["source"]), source, chosen) else "not-accepted"
    held = whole_document(blobs["source"])  # the new image set holds the source's instances
    found = (
        _selection(held) == chosen and not _inconsistent(source, held, list(chosen)) and _holds(held, source, chosen)
    )
    return "ours" if found else "not-accepted"


# --- after: the function's own code ------------------------------------------------------------------------
class StandIn:
    """HealthImaging's answers for the image sets of one step: bodies as the real client gives them."""

    def __init__(self, blobs: dict[str, bytes]) -> None:
        # The destination's baseline is version 1, the version our copy produced 2; the new image set's 1.
        self._bodies = {
            (SOURCE, "1"): blobs["source"],
            (DESTINATION, "1"): blobs["destination"],
            (DESTINATION, "2"): blobs["source"],
            (NEW, "1"): blobs["source"],
        }

    def get_image_set_metadata(self, *, datastoreId: str, imageSetId: str, versionId: str = "1") -> dict[str, Any]:
        blob = self._bodies[(imageSetId, versionId)]
        from botocore.response import StreamingBody

        return {"imageSetMetadataBlob": StreamingBody(io.BytesIO(blob), len(blob)), "contentEncoding": "gzip"}

    def get_image_set(self, *, datastoreId: str, imageSetId: str, versionId: str = "1") -> dict[str, Any]:
        return {
            "imageSetId": imageSetId,
            "versionId": versionId,
            "imageSetState": "ACTIVE",
            "imageSetWorkflowStatus": "COPIED",
            "isPrimary": imageSetId == DESTINATION,
        }

    def search_image_sets(self, *, searchCriteria: dict[str, Any], **_: Any) -> dict[str, Any]:
        (self.searched_series,) = [
            value["DICOMSeriesInstanceUID"]
            for criterion in searchCriteria["filters"]
            for value in criterion["values"]
            if "DICOMSeriesInstanceUID" in value
        ]
        found = NEW if self.searching_new else DESTINATION
        return {"imageSetsMetadataSummaries": [{"imageSetId": found, "isPrimary": True, "version": 1}]}

    searching_new = False
    searched_series = ""


def after(step: str, blobs: dict[str, bytes]) -> object:
    from copier import confirm, copy_record, destination, force_policy, healthimaging, inconsistency, journal
    from copier.copy_record import CopyRecord, CopyStatus
    from copier.errors import ForceRefused, InconsistentMetadata
    from copier.models import CopyProgress, CopyRequest

    stand_in = StandIn(blobs)
    healthimaging.read_client = lambda: stand_in  # type: ignore[assignment]
    copy_record.claims = lambda *_, **__: []  # no other copy record
    journaled: list[dict[str, Any]] = []  # the table's writes: not measured here, what they say kept
    journal.for_request = lambda *_, **entry: journaled.append(entry)  # type: ignore[assignment]
    request = CopyRequest(datastore_id=DATASTORE, source_image_set_id=SOURCE, destination_image_set_id=DESTINATION)
    if step == "ResolveDestination":
        plan = destination.find_primary_of_series(request.model_copy(update={"destination_image_set_id": None}))
        found = plan.request is not None and plan.request.destination_image_set_id == DESTINATION
        return f"search series {stand_in.searched_series}" if found else "not found"
    if step == "judge COPY_FAILED":
        progress = CopyProgress(status="COPYING", baseline_version_id="1", source_version_id="1")
        judged = inconsistency.judge_failure(request, progress)
        names = str(judged).rsplit(" differ in ", 1)[-1] if isinstance(judged, InconsistentMetadata) else ""
        return f"{type(judged).__name__}: {names}" if names else type(judged).__name__
    if step == "AuthoriseForce":
        try:
            force_policy.authorise_force(request=request)
        except ForceRefused as refused:
            return "ForceRefused: " + str(refused).split(" differ in ", 1)[1].split(" (", 1)[0]
        (entry,) = journaled
        return f"{entry['forceDecision']} ({', '.join(entry['inconsistentElements'])})"
    record = CopyRecord(
        id="r",
        status=CopyStatus.CALLING,
        source_image_set_id=SOURCE,
        source_version_id="1",
        destination_image_set_id=None if step == "ConfirmCopy new" else DESTINATION,
        baseline_version_id=None if step == "ConfirmCopy new" else "1",
        new_image_set=step == "ConfirmCopy new",
        requested_at=0.0,
        calls=1,
    )
    if step == "ConfirmCopy new":
        stand_in.searching_new = True
        return confirm._into_new(request.model_copy(update={"destination_image_set_id": None}), record).verdict
    return confirm._into_existing(request, record).verdict


# --- one measurement, in a fresh interpreter --------------------------------------------------------------
def measure(step: str, way: str, directory: Path) -> dict[str, Any]:
    import handler  # noqa: F401  # the whole function, as a cold start imports it

    blobs = {name: (directory / f"{name}.json.gz").read_bytes() for name in ("source", "destination")}
    imported_rss = _rss_mb("VmRSS")
    run: Callable[[str, dict[str, bytes]], object] = before if way == "before" else after
    started = time.process_time()
    decision = run(step, blobs)
    seconds = time.process_time() - started
    peak_rss = _rss_mb("VmHWM")
    tracemalloc.start()
    run(step, blobs)
    traced = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return {"seconds": seconds, "rss": peak_rss, "traced": traced, "decision": str(decision), "imported": imported_rss}


def _rss_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (the peak since exec: ru_maxrss would carry the parent's over exec), Linux's."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status (Linux only)")


def in_fresh_interpreter(step: str, way: str, directory: Path) -> dict[str, Any]:
    code = (
        "import json, sys; from pathlib import Path; from benchmarks.metadata import measure; "
        f"print(json.dumps(measure({step!r}, {way!r}, Path({str(directory)!r}))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, **ENV, "PYTHONPATH": f"{ROOT / 'lambda'}{os.pathsep}{ROOT}"},
    )
    answer: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,10,55", help="CT documents' sizes, MB of JSON")
    parser.add_argument("--no-slide", action="store_true", help="skip the 100,000-frame whole-slide image")
    arguments = parser.parse_args()
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")  # as the Makefile sets it
    from infra.copy_function import CopyFunction

    memory = CopyFunction.MEMORY_SIZE_MB
    documents = [("ct", float(size)) for size in arguments.sizes.split(",")]
    documents += [] if arguments.no_slide else [("slide", 0.0)]
    print(f"Steps that read metadata, before and after streaming, Python {sys.version.split()[0]};")
    print(f"the function has {memory} MB (target: every step under {memory // 2} MB and 10 s at 55 MB).")
    print(f"{'':>34} {'':>22} | {'before (whole documents)':^27} | {'after (streamed)':^27} |")
    print(f"{'document':>34} {'step':>22} | {'CPU s':>7} {'RSS MB':>8} {'traced MB':>10} |", end="")
    print(f" {'CPU s':>7} {'RSS MB':>8} {'traced MB':>10} | same decision")
    imported: list[float] = []
    with tempfile.TemporaryDirectory() as scratch:
        for kind, megabytes in documents:
            directory = Path(scratch) / f"{kind}-{megabytes}"
            directory.mkdir()
            write_documents(directory, kind, megabytes)
            size = int((directory / "source.size").read_text()) / 1e6
            gzipped = (directory / "source.json.gz").stat().st_size / 1e6
            label = f"{'CT' if kind == 'ct' else 'slide, 100k frames'} {size:.1f} MB ({gzipped:.2f} gz)"
            for step in STEPS:
                old, new = (in_fresh_interpreter(step, way, directory) for way in ("before", "after"))
                imported += [old["imported"], new["imported"]]
                print(
                    f"{label:>34} {step:>22} | {old['seconds']:7.2f} {old['rss']:8.0f} {old['traced']:10.1f} |"
                    f" {new['seconds']:7.2f} {new['rss']:8.0f} {new['traced']:10.1f} |"
                    f" {'yes' if old['decision'] == new['decision'] else 'NO: ' + old['decision'] + ' /'}"
                    f" {new['decision']}"
                )
    print(f"RSS with the handler imported, before a step: {min(imported):.0f}-{max(imported):.0f} MB")


if __name__ == "__main__":
    sys.exit(record.run(main))
