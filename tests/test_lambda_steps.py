"""The other steps through the real handler: status, confirm, force, destination, pacing."""

from __future__ import annotations

import gzip
import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.response import StreamingBody
from conftest import DATASTORE, DESTINATION, FUNCTION_ENV, SOURCE, Function, image_set, step

from offline import seed

NEW = "c" * 32


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def request(**fields: object) -> dict[str, object]:
    return {"datastoreId": DATASTORE, "sourceImageSetId": SOURCE, **fields}


def progress(**fields: object) -> dict[str, object]:
    return {
        "status": "COPYING",
        "destinationImageSetId": DESTINATION,
        "destinationVersionId": "1",
        "sourceVersionId": "1",
        "nextPollSeconds": 5,
        **fields,
    }


def expect_get(function: Function, image_set_id: str, **fields: Any) -> None:
    function.reads.add_response(
        "get_image_set", image_set(image_set_id, **fields), {"datastoreId": DATASTORE, "imageSetId": image_set_id}
    )


def expect_metadata(function: Function, image_set_id: str, document: dict[str, Any], **params: str) -> None:
    blob = gzip.compress(json.dumps(document).encode())
    function.reads.add_response(
        "get_image_set_metadata",
        {
            "imageSetMetadataBlob": StreamingBody(io.BytesIO(blob), len(blob)),
            "contentType": "application/json",
            "contentEncoding": "gzip",
        },
        {"datastoreId": DATASTORE, "imageSetId": image_set_id, **params},
    )


# --- CheckCopy -------------------------------------------------------------------------
def test_copied_with_a_newer_version_completes(function: Function) -> None:
    expect_get(function, DESTINATION, version="2", workflow="COPIED", forced=True)

    answer = function.invoke(step("check_copy", request=request(), copy=progress()))

    assert answer["status"] == "COPIED"
    assert answer["destinationVersionId"] == "2"
    assert answer["forced"] is True


def test_copied_status_left_from_an_older_copy_is_not_completion(function: Function) -> None:
    expect_get(function, DESTINATION, version="1", workflow="COPIED")  # baseline version: not ours yet

    answer = function.invoke(step("check_copy", request=request(), copy=progress()))

    assert answer["status"] == "COPYING"


def test_waits_grow_and_are_bounded(function: Function) -> None:
    waits = []
    state = progress()
    for _ in range(8):
        expect_get(function, DESTINATION, state="LOCKED", workflow="COPYING")
        state = function.invoke(step("check_copy", request=request(), copy=state))
        waits.append(state["nextPollSeconds"])
    assert waits == [10, 20, 40, 80, 120, 120, 120, 120]
    assert state["waitedSeconds"] == 5 + sum(waits[:-1])


def test_copy_that_never_finishes_times_out_clearly(function: Function) -> None:
    expect_get(function, DESTINATION, state="LOCKED", workflow="COPYING")

    with pytest.raises(Exception) as raised:
        function.invoke(step("check_copy", request=request(), copy=progress(waitedSeconds=3590, nextPollSeconds=10)))

    assert type(raised.value).__name__ == "CopyWaitTimedOut"
    assert "maxWaitSeconds 3600" in str(raised.value)


def test_copy_failed_for_inconsistent_metadata_names_elements_not_values(function: Function) -> None:
    expect_get(
        function,
        DESTINATION,
        workflow="COPY_FAILED",
        message="Inconsistent metadata: PatientBirthDate 19500101 differs, use force",
    )

    with pytest.raises(Exception) as raised:
        function.invoke(step("check_copy", request=request(), copy=progress()))

    assert type(raised.value).__name__ == "InconsistentMetadata"
    assert "PatientBirthDate" in str(raised.value) and "19500101" not in str(raised.value)


def test_copy_failed_for_another_reason_is_copy_failed(function: Function) -> None:
    expect_get(function, DESTINATION, workflow="COPY_FAILED", message="Internal error while copying frames")

    with pytest.raises(Exception) as raised:
        function.invoke(step("check_copy", request=request(), copy=progress()))

    assert type(raised.value).__name__ == "CopyFailed"


def test_destination_deleted_mid_copy(function: Function) -> None:
    expect_get(function, DESTINATION, state="DELETED", workflow="DELETED")

    with pytest.raises(Exception) as raised:
        function.invoke(step("check_copy", request=request(), copy=progress()))

    assert type(raised.value).__name__ == "ImageSetNotFound"


# --- ConfirmCopy -----------------------------------------------------------------------
def test_confirm_sees_the_destination_moved_and_accepts(function: Function) -> None:
    expect_get(function, DESTINATION, version="2", workflow="COPIED")

    answer = function.invoke(
        step("confirm_copy", request=request(destinationImageSetId=DESTINATION), copy=progress(status="UNCONFIRMED"))
    )

    assert answer["status"] == "COPYING"
    assert answer["destinationImageSetId"] == DESTINATION


def test_confirm_sees_nothing_happened_and_starts_the_next_generation(function: Function) -> None:
    expect_get(function, DESTINATION, version="1")

    answer = function.invoke(
        step("confirm_copy", request=request(destinationImageSetId=DESTINATION), copy=progress(status="UNCONFIRMED"))
    )

    assert answer["status"] == "NOT_ACCEPTED"
    assert answer["retryRequest"]["generation"] == 1


def test_confirm_of_a_snapshot_finds_the_new_image_set_of_the_study(function: Function) -> None:
    document = seed.image_set_metadata(patient_number=1, study=1, series=[1])
    expect_metadata(function, SOURCE, document)
    study_uid = document["Study"]["DICOM"]["StudyInstanceUID"]
    function.reads.add_response(
        "search_image_sets",
        {
            "imageSetsMetadataSummaries": [
                {"imageSetId": SOURCE, "version": 1, "createdAt": at(1_000), "isPrimary": True},
                {"imageSetId": NEW, "version": 1, "createdAt": at(2_000), "isPrimary": False},
            ]
        },
        {
            "datastoreId": DATASTORE,
            "searchCriteria": {"filters": [{"values": [{"DICOMStudyInstanceUID": study_uid}], "operator": "EQUAL"}]},
        },
    )
    expect_get(function, NEW, state="LOCKED", workflow="COPYING")

    answer = function.invoke(
        step(
            "confirm_copy",
            request=request(),
            copy=progress(
                status="UNCONFIRMED", destinationImageSetId=None, destinationVersionId=None, requestedAt=1_990.0
            ),
        )
    )

    assert answer["status"] == "COPYING"
    assert answer["destinationImageSetId"] == NEW
    function.reads.assert_no_pending_responses()  # found: the source is not read again


# --- AuthoriseForce --------------------------------------------------------------------
def same_patient(**patient: str) -> dict[str, Any]:
    document = seed.image_set_metadata(patient_number=7, study=1, series=[1])
    document["Patient"]["DICOM"].update(patient)
    return document


ERROR = {"Error": "InconsistentMetadata", "Cause": json.dumps({"errorMessage": "inconsistent in StudyDescription"})}


def test_same_patient_allows_force(function: Function) -> None:
    expect_metadata(function, SOURCE, same_patient())
    expect_metadata(function, DESTINATION, same_patient())

    answer = function.invoke(step("authorise_force", request=request(destinationImageSetId=DESTINATION), error=ERROR))

    assert answer["force"] is True


def test_same_patient_refuses_a_different_patient_naming_elements_only(function: Function) -> None:
    expect_metadata(function, SOURCE, same_patient())
    expect_metadata(function, DESTINATION, same_patient(PatientName="SYNTHETIC^OTHER^PERSON", PatientID="FAKE-OTHER"))

    with pytest.raises(Exception) as raised:
        function.invoke(step("authorise_force", request=request(destinationImageSetId=DESTINATION), error=ERROR))

    message = str(raised.value)
    assert type(raised.value).__name__ == "ForceRefused"
    assert "PatientID" in message and "PatientName" in message and "same-patient" in message
    assert "SYNTHETIC" not in message and "FAKE" not in message


@pytest.mark.parametrize("function_env", [{**FUNCTION_ENV, "FORCE_POLICY": "never"}])
def test_never_refuses_without_reading_metadata(function: Function) -> None:
    with pytest.raises(Exception) as raised:
        function.invoke(step("authorise_force", request=request(destinationImageSetId=DESTINATION), error=ERROR))

    assert type(raised.value).__name__ == "ForceRefused"
    assert "'never'" in str(raised.value) and "StudyDescription" in str(raised.value)


@pytest.mark.parametrize("function_env", [{**FUNCTION_ENV, "FORCE_POLICY": "always"}])
def test_always_allows(function: Function) -> None:
    answer = function.invoke(step("authorise_force", request=request(destinationImageSetId=DESTINATION), error=ERROR))
    assert answer["force"] is True


# --- ResolvePrimary --------------------------------------------------------------------
@pytest.mark.parametrize("function_env", [{**FUNCTION_ENV, "COPY_POLICY": "merge-into-primary"}])
def test_merge_into_primary_finds_the_study_primary(function: Function) -> None:
    document = seed.image_set_metadata(patient_number=3, study=2, series=[4])
    function.reads.add_response(
        "get_image_set",
        image_set(SOURCE, is_primary=False),
        {"datastoreId": DATASTORE, "imageSetId": SOURCE, "versionId": "1"},
    )
    expect_metadata(function, SOURCE, document, versionId="1")
    function.reads.add_response(
        "search_image_sets",
        {
            "imageSetsMetadataSummaries": [
                {"imageSetId": SOURCE, "version": 1, "isPrimary": False},
                {"imageSetId": DESTINATION, "version": 3, "isPrimary": True},
            ]
        },
        None,
    )

    plan = function.invoke(step("resolve_destination", request=request(sourceVersionId="1")))

    assert plan["request"]["destinationImageSetId"] == DESTINATION
    assert plan["resolveDestination"] is False


# --- ReserveCopySlot -------------------------------------------------------------------
def test_slots_are_spaced_by_the_configured_rate(function: Function, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(function.modules.clock, "now", lambda: 1_000.0)
    waits = [function.invoke(step("reserve_slot"))["waitSeconds"] for _ in range(4)]
    assert waits == [0, 5, 9, 13]  # 1 / 0.24 s apart, rounded up to whole seconds
