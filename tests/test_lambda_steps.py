"""The other steps through the real handler: status, confirm, force, destination, pacing."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import pytest
from function_stubs import (
    DATASTORE,
    DESTINATION,
    FUNCTION_ENV,
    SOURCE,
    Function,
    emf_metrics,
    expect_metadata,
    image_set,
    step,
)

from offline import seed

NEW = "c" * 32
SERIES = seed.image_set_metadata(patient_number=3, study=2, series=[4])


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def request(**fields: object) -> dict[str, object]:
    return {"datastoreId": DATASTORE, "sourceImageSetId": SOURCE, **fields}


def progress(**fields: object) -> dict[str, object]:
    """A copy into DESTINATION at version 1 that produces version 2."""
    return {
        "status": "COPYING",
        "destinationImageSetId": DESTINATION,
        "destinationVersionId": "2",
        "baselineVersionId": "1",
        "sourceVersionId": "1",
        "nextPollSeconds": 5,
        **fields,
    }


def expect_get(function: Function, image_set_id: str, version: str | None = None, **fields: Any) -> None:
    params = {"datastoreId": DATASTORE, "imageSetId": image_set_id}
    if version is not None:
        params["versionId"] = version
    function.reads.add_response("get_image_set", image_set(image_set_id, version=version or "1", **fields), params)


def expect_missing_version(function: Function, image_set_id: str, version: str) -> None:
    function.reads.add_client_error(
        "get_image_set",
        service_error_code="ResourceNotFoundException",
        http_status_code=404,
        expected_params={"datastoreId": DATASTORE, "imageSetId": image_set_id, "versionId": version},
    )


def with_instances(document: dict[str, Any], *sops: str) -> dict[str, Any]:
    """The document with its one series holding exactly these instances."""
    changed = copy.deepcopy(document)
    (series,) = changed["Study"]["Series"].values()
    template = next(iter(series["Instances"].values()))
    series["Instances"] = {sop: {**template, "DICOM": {**template["DICOM"], "SOPInstanceUID": sop}} for sop in sops}
    return changed


def differing_in(document: dict[str, Any], **study: str) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    changed["Study"]["DICOM"].update(study)
    return changed


# --- CheckCopy: the outcome is read from the version this copy produces ------------------
def test_our_version_copied_completes_whatever_the_image_set_shows_now(function: Function) -> None:
    expect_get(function, DESTINATION, "2", workflow="COPIED", forced=True)  # only version 2 is read

    answer = function.invoke(step("check_copy", request=request(), copy=progress()))

    assert answer["status"] == "COPIED"
    assert answer["destinationVersionId"] == "2"
    assert answer["forced"] is True
    function.reads.assert_no_pending_responses()


def test_our_version_still_copying_waits(function: Function) -> None:
    expect_get(function, DESTINATION, "2", state="LOCKED", workflow="COPYING")

    answer = function.invoke(step("check_copy", request=request(), copy=progress()))

    assert (answer["status"], answer["nextPollSeconds"]) == ("COPYING", 10)


def test_a_version_not_visible_yet_waits_unless_the_image_set_is_gone(function: Function) -> None:
    expect_missing_version(function, DESTINATION, "2")
    expect_get(function, DESTINATION, state="LOCKED", workflow="COPYING")

    answer = function.invoke(step("check_copy", request=request(), copy=progress()))

    assert answer["status"] == "COPYING"


def test_waits_grow_and_are_bounded(function: Function) -> None:
    waits = []
    state = progress()
    for _ in range(8):
        expect_get(function, DESTINATION, "2", state="LOCKED", workflow="COPYING")
        state = function.invoke(step("check_copy", request=request(), copy=state))
        waits.append(state["nextPollSeconds"])
    assert waits == [10, 20, 40, 80, 120, 120, 120, 120]
    assert state["waitedSeconds"] == 5 + sum(waits[:-1])


def test_copy_that_never_finishes_times_out_clearly(function: Function) -> None:
    expect_get(function, DESTINATION, "2", state="LOCKED", workflow="COPYING")

    with pytest.raises(Exception) as raised:
        function.invoke(step("check_copy", request=request(), copy=progress(waitedSeconds=3590, nextPollSeconds=10)))

    assert type(raised.value).__name__ == "CopyWaitTimedOut"
    assert "maxWaitSeconds 3600" in str(raised.value)


def test_our_failed_version_is_inconsistent_metadata_when_the_documents_differ(function: Function) -> None:
    expect_get(function, DESTINATION, "2", workflow="COPY_FAILED", message="Copy failed")
    expect_metadata(function, SOURCE, differing_in(SERIES, StudyDescription="SYNTHETIC MR"), versionId="1")
    expect_metadata(function, DESTINATION, SERIES, versionId="1")  # the baseline our copy was judged against

    with pytest.raises(Exception) as raised:
        function.invoke(step("check_copy", request=request(destinationImageSetId=DESTINATION), copy=progress()))

    assert type(raised.value).__name__ == "InconsistentMetadata"
    assert "StudyDescription" in str(raised.value) and "SYNTHETIC" not in str(raised.value)


def test_a_failure_message_about_inconsistency_is_not_evidence(function: Function) -> None:
    expect_get(function, DESTINATION, "2", workflow="COPY_FAILED", message="Inconsistent metadata use force")
    expect_metadata(function, SOURCE, SERIES, versionId="1")
    expect_metadata(function, DESTINATION, SERIES, versionId="1")

    with pytest.raises(Exception) as raised:
        function.invoke(step("check_copy", request=request(destinationImageSetId=DESTINATION), copy=progress()))

    assert type(raised.value).__name__ == "CopyFailed"
    assert "version 2" in str(raised.value)


def test_a_failed_new_image_set_is_copy_failed_without_reading_metadata(function: Function) -> None:
    expect_get(function, NEW, "1", workflow="COPY_FAILED", message="Internal error while copying frames")

    with pytest.raises(Exception) as raised:
        function.invoke(
            step(
                "check_copy",
                request=request(),
                copy=progress(destinationImageSetId=NEW, destinationVersionId="1", baselineVersionId=None),
            )
        )

    assert type(raised.value).__name__ == "CopyFailed"
    function.reads.assert_no_pending_responses()


def test_destination_deleted_mid_copy(function: Function) -> None:
    expect_missing_version(function, DESTINATION, "2")
    expect_get(function, DESTINATION, state="DELETED", workflow="DELETED")

    with pytest.raises(Exception) as raised:
        function.invoke(step("check_copy", request=request(), copy=progress()))

    assert type(raised.value).__name__ == "ImageSetNotFound"


# --- CheckCopy after AwaitCopy: what ended the wait decides what comes next -------------------------------
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
CANCELLED = "Transaction cancelled, please refer cancellation reasons for specific reasons [{}] (Service: DynamoDb)"


@pytest.mark.parametrize(
    "wake",
    [
        {"Error": "DynamoDb.TransactionCanceledException", "Cause": CANCELLED.format("None, ConditionalCheckFailed")},
        {"Error": "DynamoDb.TransactionCanceledException", "Cause": CANCELLED.format("TransactionConflict, None")},
        {"Error": "DynamoDb.ConditionalCheckFailedException", "Cause": "The conditional request failed"},
    ],
    ids=["condition failed", "the event's write at the same moment", "the previous definition's condition"],
)
def test_an_event_recorded_before_the_token_is_no_failure_and_the_next_wait_starts_after_it(
    function: Function, capsys: pytest.CaptureFixture[str], wake: dict[str, str]
) -> None:
    expect_get(function, DESTINATION, "2", state="LOCKED", workflow="COPYING")  # another writer's event, say
    with freeze(function, T0 + 30):
        answer = function.invoke(step("check_copy", request=request(), copy=progress(startedAt=T0), wake=wake))
    assert (answer["awaitFailed"], answer["wakeSince"], answer["nextPollSeconds"]) == (False, T0 + 31, 10)
    assert "AwaitCopyFailures" not in emf_metrics(capsys.readouterr().out)


@pytest.mark.parametrize(
    "wake",
    [
        {"Error": "DynamoDb.AccessDeniedException", "Cause": "not authorized to perform: dynamodb:UpdateItem"},
        {"Error": "DynamoDb.TransactionCanceledException", "Cause": CANCELLED.format("ThrottlingError, None")},
        {"Error": "DynamoDb.KmsException", "Cause": "The key is disabled"},
        {"Error": "States.TaskFailed", "Cause": "no reasons given"},
    ],
    ids=["access denied", "throttled", "key disabled", "anything else"],
)
def test_a_failed_await_copy_is_counted_and_the_copy_waits_a_growing_while_before_it_tries_again(
    function: Function, capsys: pytest.CaptureFixture[str], wake: dict[str, str]
) -> None:
    """Not straight back to AwaitCopy (WaitBeforeAwaitingAgain): a refused write would loop AwaitCopy -> CheckCopy
    with no wait, an invocation and a GetImageSet each turn, until maxWaitSeconds."""
    waits = []
    state = progress(startedAt=T0, nextPollSeconds=60)
    for n in range(4):
        expect_get(function, DESTINATION, "2", state="LOCKED", workflow="COPYING")
        with freeze(function, T0 + 60 * n):
            state = function.invoke(step("check_copy", request=request(), copy=state, wake=wake))
        assert state["awaitFailed"] is True and state["status"] == "COPYING"
        waits.append(state["nextPollSeconds"])
    assert waits == [120, 120, 120, 120]  # the fallback's growing waits (from completionWaitSeconds), capped
    assert emf_metrics(capsys.readouterr().out)["AwaitCopyFailures"] == 4
    expect_get(function, DESTINATION, "2", state="LOCKED", workflow="COPYING")
    with freeze(function, T0 + 300):
        state = function.invoke(step("check_copy", request=request(), copy=state, wake={"Error": "States.Timeout"}))
    assert state["awaitFailed"] is False  # AwaitCopy waited again: back to the usual loop


@pytest.mark.parametrize(
    ("updated_at", "wake", "landed_at"),
    [
        (T0 + 40.2, {"Error": "States.Timeout"}, T0 + 41),  # no event: the version's own record
        (T0 + 40.2, {"wokenBy": "event", "eventAt": T0 + 45}, T0 + 41),  # the earlier of the two
        (T0 + 40.2, {"wokenBy": "event", "eventAt": T0 + 38}, T0 + 39),
        (T0 - 5.0, {"wokenBy": "event", "eventAt": T0 + 45}, T0 + 46),  # not after the call: not believed
        (T0 - 5.0, {"Error": "States.Timeout"}, None),  # nothing to believe: the journal keeps the look's time
        (None, {"Error": "States.Timeout"}, None),
    ],
)
def test_a_copy_landed_when_its_version_says_not_when_it_was_looked_at(
    function: Function, updated_at: float | None, wake: dict[str, Any], landed_at: int | None
) -> None:
    """The dispatcher measures how long copies hold a concurrent copy from when they landed: a copy no event
    woke must not count its fallback wait (its look comes up to a minute later)."""
    answer = image_set(DESTINATION, version="2", workflow="COPIED")
    if updated_at is not None:
        answer["updatedAt"] = at(updated_at)
    function.reads.add_response(
        "get_image_set", answer, {"datastoreId": DATASTORE, "imageSetId": DESTINATION, "versionId": "2"}
    )
    with freeze(function, T0 + 100):
        copied = function.invoke(
            step("check_copy", request=request(sourceVersionId="1"), copy=progress(startedAt=T0), wake=wake)
        )
        assert copied["status"] == "COPIED"
        (entry,) = function.modules.journal.entries(image_set_id=SOURCE)
    assert entry.get("landedAt") == landed_at


@contextmanager
def freeze(function: Function, now: float) -> Iterator[None]:
    with mock.patch.object(function.modules.clock, "now", lambda: now):
        yield


# --- ConfirmCopy: adopt on proof, start again when nothing landed, else stop ----------------
def record_unanswered_call(function: Function, copy_request: dict[str, object], *, called_at: float) -> None:
    """The copy record a CopyImageSet without an answer leaves (source at 1, destination at 1)."""
    modules = function.modules
    parsed = modules.models.CopyRequest.model_validate(copy_request)
    original = modules.clock.now
    modules.clock.now = lambda: called_at
    try:
        modules.copy_record.begin_call(
            parsed,
            previous=None,
            source_version_id="1",
            baseline_version_id="1" if parsed.destination_image_set_id else None,
            execution_id="test",
        )
    finally:
        modules.clock.now = original


def confirm(function: Function, copy_request: dict[str, object], *, now: float) -> dict[str, Any]:
    function.modules.clock.now = lambda: now
    return function.invoke(step("confirm_copy", request=copy_request))


INTO_DESTINATION = request(destinationImageSetId=DESTINATION)


def test_the_expected_version_holding_our_instances_is_ours(function: Function) -> None:
    record_unanswered_call(function, INTO_DESTINATION, called_at=1_000)
    expect_get(function, DESTINATION, "2", workflow="COPIED")
    expect_metadata(function, SOURCE, with_instances(SERIES, "9.1", "9.2"), versionId="1")
    expect_metadata(function, DESTINATION, with_instances(SERIES, "1.1"), versionId="1")
    expect_metadata(function, DESTINATION, with_instances(SERIES, "1.1", "9.1", "9.2"), versionId="2")

    answer = confirm(function, INTO_DESTINATION, now=1_010)

    assert (answer["status"], answer["destinationImageSetId"], answer["destinationVersionId"]) == (
        "COPYING",
        DESTINATION,
        "2",
    )
    record = function.modules.copy_record.load(function.modules.models.CopyRequest.model_validate(INTO_DESTINATION))
    assert (record.status, record.destination_version_id) == ("ACCEPTED", "2")


def test_the_expected_version_written_by_another_copy_is_not_ours(function: Function) -> None:
    record_unanswered_call(function, INTO_DESTINATION, called_at=1_000)
    expect_get(function, DESTINATION, "2", workflow="COPIED")
    expect_metadata(function, SOURCE, with_instances(SERIES, "9.1"), versionId="1")
    expect_metadata(function, DESTINATION, with_instances(SERIES, "1.1"), versionId="1")
    expect_metadata(function, DESTINATION, with_instances(SERIES, "1.1", "7.1"), versionId="2")

    answer = confirm(function, INTO_DESTINATION, now=1_100)

    assert answer["status"] == "NOT_ACCEPTED"


def test_no_new_version_is_trusted_only_after_the_call_has_settled(function: Function) -> None:
    record_unanswered_call(function, INTO_DESTINATION, called_at=1_000)
    for _ in range(2):
        expect_missing_version(function, DESTINATION, "2")
        expect_get(function, DESTINATION)  # still at the baseline (1), unlocked

    early = confirm(function, INTO_DESTINATION, now=1_010)  # a timed-out request may still be in flight
    late = confirm(function, INTO_DESTINATION, now=1_100)

    assert (early["status"], early["nextPollSeconds"]) == ("UNCONFIRMED", 5)
    assert late["status"] == "NOT_ACCEPTED"
    record = function.modules.copy_record.load(function.modules.models.CopyRequest.model_validate(INTO_DESTINATION))
    assert (record.status, record.looks) == ("NOT_ACCEPTED", 2)


def test_content_that_was_already_there_cannot_decide_and_tells_the_operator_what_to_check(
    function: Function, capsys: pytest.CaptureFixture[str]
) -> None:
    record_unanswered_call(function, INTO_DESTINATION, called_at=1_000)
    expect_get(function, DESTINATION, "2", workflow="COPIED")
    expect_metadata(function, SOURCE, with_instances(SERIES, "9.1"), versionId="1")
    expect_metadata(function, DESTINATION, with_instances(SERIES, "9.1"), versionId="1")

    with pytest.raises(Exception) as raised:
        confirm(function, INTO_DESTINATION, now=1_100)

    assert type(raised.value).__name__ == "CopyOutcomeUndecided"
    cause = str(raised.value)
    assert f"versions after 1 of image set {DESTINATION}" in cause and "healthimaging-copy start" in cause


def test_the_expected_version_written_by_a_metadata_update_means_ours_was_refused(function: Function) -> None:
    record_unanswered_call(function, INTO_DESTINATION, called_at=1_000)
    expect_get(function, DESTINATION, "2", workflow="UPDATED")

    answer = confirm(function, INTO_DESTINATION, now=1_100)

    assert answer["status"] == "NOT_ACCEPTED"


def test_a_re_import_of_the_same_instances_with_other_values_is_not_our_copy(function: Function) -> None:
    record_unanswered_call(function, INTO_DESTINATION, called_at=1_000)
    expect_get(function, DESTINATION, "2", workflow="COPIED")
    expect_metadata(function, SOURCE, with_instances(SERIES, "9.1"), versionId="1")
    expect_metadata(function, DESTINATION, with_instances(SERIES, "1.1"), versionId="1")
    twin = with_instances(SERIES, "1.1", "9.1")
    (series,) = twin["Study"]["Series"].values()
    series["Instances"]["9.1"]["DICOM"]["SOPClassUID"] = "1.2.840.10008.5.1.4.1.1.4"  # same UID, other values
    expect_metadata(function, DESTINATION, twin, versionId="2")

    answer = confirm(function, INTO_DESTINATION, now=1_100)

    assert answer["status"] == "NOT_ACCEPTED"


def test_a_version_another_record_adopted_is_not_adopted_twice(function: Function) -> None:
    other_request = request(sourceImageSetId=NEW, destinationImageSetId=DESTINATION)
    record_unanswered_call(function, other_request, called_at=1_000)
    modules = function.modules
    other = modules.copy_record.load(modules.models.CopyRequest.model_validate(other_request))
    modules.copy_record.adopt(other, destination_image_set_id=DESTINATION, destination_version_id="2")
    record_unanswered_call(function, INTO_DESTINATION, called_at=1_000)
    expect_get(function, DESTINATION, "2", workflow="COPIED")

    answer = confirm(function, INTO_DESTINATION, now=1_100)

    assert answer["status"] == "NOT_ACCEPTED"  # version 2 is the other record's: ours was refused
    function.reads.assert_no_pending_responses()


def summary(image_set_id: str, created: float) -> dict[str, Any]:
    return {"imageSetId": image_set_id, "version": 1, "createdAt": at(created), "isPrimary": False}


def expect_series_search(function: Function, *summaries: dict[str, Any], since: float, until: float) -> None:
    (series_uid,) = SERIES["Study"]["Series"]
    function.reads.add_response(
        "search_image_sets",
        {"imageSetsMetadataSummaries": list(summaries)},
        {
            "datastoreId": DATASTORE,
            "searchCriteria": {
                "filters": [
                    {"operator": "EQUAL", "values": [{"DICOMSeriesInstanceUID": series_uid}]},
                    {"operator": "BETWEEN", "values": [{"createdAt": at(since)}, {"createdAt": at(until)}]},
                ]
            },
        },
    )


def test_a_new_image_set_of_the_series_holding_exactly_our_instances_is_ours(function: Function) -> None:
    record_unanswered_call(function, request(), called_at=1_000)
    expect_metadata(function, SOURCE, SERIES, versionId="1")
    expect_series_search(function, summary(SOURCE, 10), summary(NEW, 1_001), since=995, until=1_011)
    expect_get(function, NEW, "1", workflow="COPIED")
    expect_metadata(function, NEW, SERIES, versionId="1")

    answer = confirm(function, request(), now=1_010)

    assert (answer["status"], answer["destinationImageSetId"], answer["destinationVersionId"]) == (
        "COPYING",
        NEW,
        "1",
    )


def test_a_neighbour_copy_of_the_same_series_with_other_instances_is_not_adopted(function: Function) -> None:
    record_unanswered_call(function, request(), called_at=1_000)
    expect_metadata(function, SOURCE, with_instances(SERIES, "9.1"), versionId="1")
    expect_series_search(function, summary(NEW, 1_002), since=995, until=1_101)
    expect_get(function, NEW, "1", workflow="COPIED")
    expect_metadata(function, NEW, with_instances(SERIES, "8.1"), versionId="1")
    expect_get(function, SOURCE)  # not being copied from

    answer = confirm(function, request(), now=1_100)

    assert answer["status"] == "NOT_ACCEPTED"


def test_a_forced_flag_that_differs_is_not_proof_either_way(function: Function) -> None:
    record_unanswered_call(function, request(), called_at=1_000)
    expect_metadata(function, SOURCE, SERIES, versionId="1")
    expect_series_search(function, summary(NEW, 1_001), since=995, until=1_101)
    expect_get(function, NEW, "1", workflow="COPIED", forced=True)  # our request was not forced
    expect_metadata(function, NEW, SERIES, versionId="1")

    with pytest.raises(Exception) as raised:
        confirm(function, request(), now=1_100)

    assert type(raised.value).__name__ == "CopyOutcomeUndecided"


def test_two_new_image_sets_holding_our_instances_cannot_decide(function: Function) -> None:
    other = "d" * 32
    record_unanswered_call(function, request(), called_at=1_000)
    expect_metadata(function, SOURCE, SERIES, versionId="1")
    expect_series_search(function, summary(NEW, 1_001), summary(other, 1_002), since=995, until=1_101)
    for candidate in (NEW, other):
        expect_get(function, candidate, "1", workflow="COPIED")
        expect_metadata(function, candidate, SERIES, versionId="1")

    with pytest.raises(Exception) as raised:
        confirm(function, request(), now=1_100)

    assert type(raised.value).__name__ == "CopyOutcomeUndecided"
    assert NEW in str(raised.value) and other in str(raised.value)


# --- AuthoriseForce --------------------------------------------------------------------
def same_patient(**patient: str) -> dict[str, Any]:
    document = seed.image_set_metadata(patient_number=7, study=1, series=[1])
    document["Patient"]["DICOM"].update(patient)
    return document


def test_same_patient_allows_force(function: Function) -> None:
    expect_metadata(function, SOURCE, same_patient())
    expect_metadata(function, DESTINATION, differing_in(same_patient(), StudyDescription="SYNTHETIC MR"))

    answer = function.invoke(step("authorise_force", request=request(destinationImageSetId=DESTINATION)))

    assert answer["force"] is True
    function.reads.assert_no_pending_responses()  # one read of each document serves both decisions


def test_same_patient_refuses_a_different_patient_naming_elements_only(function: Function) -> None:
    expect_metadata(function, SOURCE, same_patient())
    expect_metadata(function, DESTINATION, same_patient(PatientName="SYNTHETIC^OTHER^PERSON", PatientID="FAKE-OTHER"))

    with pytest.raises(Exception) as raised:
        function.invoke(step("authorise_force", request=request(destinationImageSetId=DESTINATION)))

    message = str(raised.value)
    assert type(raised.value).__name__ == "ForceRefused"
    assert "PatientID" in message and "PatientName" in message and "same-patient" in message
    assert "SYNTHETIC" not in message and "FAKE" not in message


@pytest.mark.parametrize("function_env", [{**FUNCTION_ENV, "FORCE_POLICY": "never"}])
def test_never_refuses_naming_the_inconsistent_elements(function: Function) -> None:
    expect_metadata(function, SOURCE, same_patient())
    expect_metadata(function, DESTINATION, differing_in(same_patient(), StudyDescription="SYNTHETIC MR"))

    with pytest.raises(Exception) as raised:
        function.invoke(step("authorise_force", request=request(destinationImageSetId=DESTINATION)))

    assert type(raised.value).__name__ == "ForceRefused"
    assert "'never'" in str(raised.value) and "StudyDescription" in str(raised.value)


@pytest.mark.parametrize("function_env", [{**FUNCTION_ENV, "FORCE_POLICY": "always"}])
def test_always_allows(function: Function) -> None:
    expect_metadata(function, SOURCE, same_patient())
    expect_metadata(function, DESTINATION, same_patient())
    answer = function.invoke(step("authorise_force", request=request(destinationImageSetId=DESTINATION)))
    assert answer["force"] is True


# --- FindPrimaryOfSeries ---------------------------------------------------------------
def expect_merge_source(function: Function, document: dict[str, Any]) -> None:
    function.reads.add_response(
        "get_image_set",
        image_set(SOURCE, is_primary=False),
        {"datastoreId": DATASTORE, "imageSetId": SOURCE, "versionId": "1"},
    )
    expect_metadata(function, SOURCE, document, versionId="1")


def expect_primaries(function: Function, *image_set_ids: str) -> None:
    (series_uid,) = SERIES["Study"]["Series"]
    study_uid = SERIES["Study"]["DICOM"]["StudyInstanceUID"]
    function.reads.add_response(
        "search_image_sets",
        {
            "imageSetsMetadataSummaries": [
                {"imageSetId": i, "version": 3, "isPrimary": True, "DICOMTags": {"DICOMStudyInstanceUID": study_uid}}
                for i in image_set_ids
            ]
        },
        {
            "datastoreId": DATASTORE,
            "searchCriteria": {
                "filters": [
                    {"operator": "EQUAL", "values": [{"DICOMSeriesInstanceUID": series_uid}]},
                    {"operator": "EQUAL", "values": [{"isPrimary": True}]},
                ]
            },
        },
    )


@pytest.mark.parametrize("function_env", [{**FUNCTION_ENV, "COPY_POLICY": "merge-into-primary"}])
def test_merge_into_primary_finds_the_primary_of_the_series(function: Function) -> None:
    expect_merge_source(function, SERIES)
    expect_primaries(function, DESTINATION)

    plan = function.invoke(step("find_primary", request=request(sourceVersionId="1")))

    assert plan["request"]["destinationImageSetId"] == DESTINATION
    assert plan["resolveDestination"] is False


@pytest.mark.parametrize(
    ("primaries", "error"), [((), "PrimaryImageSetNotFound"), ((DESTINATION, NEW), "SeveralPrimaryImageSets")]
)
def test_merge_needs_exactly_one_primary_of_the_series(
    function: Function, primaries: tuple[str, ...], error: str
) -> None:
    expect_merge_source(function, SERIES)
    expect_primaries(function, *primaries)

    with pytest.raises(Exception) as raised:
        function.invoke(step("find_primary", request=request(sourceVersionId="1")))

    assert type(raised.value).__name__ == error


def test_merge_of_an_image_set_holding_several_series_is_refused_by_name(function: Function) -> None:
    expect_merge_source(function, seed.image_set_metadata(patient_number=3, study=2, series=[4, 5]))

    with pytest.raises(Exception) as raised:
        function.invoke(step("find_primary", request=request(sourceVersionId="1")))

    assert type(raised.value).__name__ == "InvalidCopyRequest"
    assert "holds 2 series" in str(raised.value)


# --- ReserveCopySlot -------------------------------------------------------------------
def test_slots_are_spaced_by_the_configured_rate(function: Function, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(function.modules.clock, "now", lambda: 1_000.0)
    slots = [function.invoke(step("reserve_slot")) for _ in range(4)]
    assert [slot["at"] for slot in slots] == pytest.approx([1_002.0 + index / 0.24 for index in range(4)])
    assert [slot["waitSeconds"] for slot in slots] == [0, 4, 8, 12]  # whole seconds, ending 2 s or less before


def test_the_previous_release_s_reservation_payload_is_read_and_bounded(
    function: Function, monkeypatch: pytest.MonkeyPatch
) -> None:
    """0.1.0's ReserveCopySlot sends {"action": "reserve_slot", "reservations": n} (an execution in flight across
    the upgrade): the count is this copy's slots so far, and bounds its pushbacks as `slot.reservations` does."""
    monkeypatch.setattr(function.modules.clock, "now", lambda: 1_000.0)
    reserved = function.invoke({"action": "reserve_slot", "reservations": 3})
    assert (reserved["at"], reserved["reservations"], reserved["waitSeconds"]) == (1_002.0, 4, 0)
    with pytest.raises(Exception) as stopped:
        function.invoke({"action": "reserve_slot", "reservations": 5 + 10})  # its own 5, throttleRetryAttempts 10
    assert type(stopped.value).__name__ == "CopyThrottled" and "15 reserved slots" in str(stopped.value)
    with pytest.raises(Exception) as refused:  # the payload's other fields are still refused
        function.invoke({"action": "reserve_slot", "reservations": 3, "waitSeconds": 4})
    assert type(refused.value).__name__ == "InvalidCopyRequest" and "waitSeconds" in str(refused.value)


# --- dispatch (the schedule rule's action) -----------------------------------------------
def test_a_dispatch_without_its_state_machine_fails_naming_the_setting_before_any_call(function: Function) -> None:
    with pytest.raises(Exception) as raised:
        function.invoke({"action": "dispatch"})

    assert type(raised.value).__name__ == "FunctionMisconfigured"
    assert "STATE_MACHINE_ARN" in str(raised.value)
    function.reads.assert_no_pending_responses()  # and no HealthImaging call was made (none was stubbed)
