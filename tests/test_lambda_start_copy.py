"""StartCopy through the real handler, with botocore Stubbers on real medical-imaging clients."""

from __future__ import annotations

import json

import pytest
from function_stubs import (
    DATASTORE,
    DESTINATION,
    FUNCTION_ENV,
    SOURCE,
    Function,
    copy_answer,
    emf_metrics,
    expect_metadata,
    image_set,
    step,
)

from offline import seed

NEW = "c" * 32
ERROR_CODES = {
    "AccessDeniedException": (403, "CopyAccessDenied"),
    "ConflictException": (409, "CopyConflict"),
    "ResourceNotFoundException": (404, "ImageSetNotFound"),
    "ServiceQuotaExceededException": (402, "CopyQuotaExceeded"),
    "ThrottlingException": (429, "CopyThrottled"),
    "ValidationException": (400, "InvalidCopyRequest"),
}


def request(**fields: object) -> dict[str, object]:
    return {"datastoreId": DATASTORE, "sourceImageSetId": SOURCE, **fields}


def copy_params(
    destination: dict[str, str] | None = None,
    *,
    attributes: str | None = None,
    force: bool = False,
    promote: bool = False,
) -> dict[str, object]:
    source: dict[str, object] = {"latestVersionId": "1"}
    if attributes:
        source["DICOMCopies"] = {"copiableAttributes": attributes}
    information: dict[str, object] = {"sourceImageSet": source}
    if destination:
        information["destinationImageSet"] = destination
    return {
        "datastoreId": DATASTORE,
        "sourceImageSetId": SOURCE,
        "copyImageSetInformation": information,
        "force": force,
        "promoteToPrimary": promote,
    }


def expect_source(function: Function, **fields: object) -> None:
    function.reads.add_response(
        "get_image_set",
        image_set(SOURCE, **fields),  # type: ignore[arg-type]
        {"datastoreId": DATASTORE, "imageSetId": SOURCE},
    )


def test_snapshot_copy_calls_copy_image_set_once_and_reports_the_new_image_set(
    function: Function, capsys: pytest.CaptureFixture[str]
) -> None:
    expect_source(function)
    function.copies.add_response("copy_image_set", copy_answer(SOURCE, NEW), copy_params())

    progress = function.invoke(step("start_copy", request=request()))

    assert progress["status"] == "COPYING"
    assert progress["destinationImageSetId"] == NEW
    assert progress["sourceVersionId"] == "1"
    assert progress["destinationVersionId"] == "1"  # the version this copy creates
    assert progress["baselineVersionId"] is None  # a new image set has no version before the copy
    function.copies.assert_no_pending_responses()
    assert emf_metrics(capsys.readouterr().out)["CopiesStarted"] == 1


def test_explicit_destination_and_subset_copy_send_the_documented_request(function: Function) -> None:
    attributes = {"SchemaVersion": "1.1", "Study": {"Series": {"1.2.3": {"Instances": {"1.2.3.4": {}}}}}}
    expect_source(function)
    function.reads.add_response(
        "get_image_set", image_set(DESTINATION, version="7"), {"datastoreId": DATASTORE, "imageSetId": DESTINATION}
    )
    canonical = json.dumps(attributes, separators=(",", ":"), sort_keys=True)
    function.copies.add_response(
        "copy_image_set",
        copy_answer(SOURCE, DESTINATION, version="8"),
        copy_params({"imageSetId": DESTINATION, "latestVersionId": "7"}, attributes=canonical, promote=True),
    )

    progress = function.invoke(
        step(
            "start_copy",
            request=request(
                destinationImageSetId=DESTINATION, copiableAttributes=json.dumps(attributes), promoteToPrimary=True
            ),
        )
    )

    assert progress["destinationImageSetId"] == DESTINATION
    assert progress["destinationVersionId"] == "8"  # the version this copy produces: its outcome is judged there
    assert progress["baselineVersionId"] == "7"
    function.copies.assert_no_pending_responses()


def test_copiable_attributes_given_as_an_object_are_sent_as_a_json_string(function: Function) -> None:
    attributes = {"Study": {"Series": {"1.2.3": {}}}, "SchemaVersion": "1.1"}
    expect_source(function)
    function.copies.add_response(
        "copy_image_set",
        copy_answer(SOURCE, NEW),
        copy_params(attributes=json.dumps(attributes, separators=(",", ":"), sort_keys=True)),
    )

    function.invoke(step("start_copy", request=request(copiableAttributes=attributes)))

    function.copies.assert_no_pending_responses()


@pytest.mark.parametrize(("code", "expected"), ERROR_CODES.items(), ids=list(ERROR_CODES))
def test_every_copy_image_set_error_code_becomes_a_named_error(
    function: Function, code: str, expected: tuple[int, str]
) -> None:
    status, name = expected
    expect_source(function)
    function.copies.add_client_error(
        "copy_image_set",
        service_error_code=code,
        service_message="refused",
        http_status_code=status,
        expected_params=copy_params(),
    )

    with pytest.raises(Exception) as raised:
        function.invoke(step("start_copy", request=request()))

    assert type(raised.value).__name__ == name
    assert code in str(raised.value) and str(status) in str(raised.value)
    # A certain refusal is recorded as such: the next try may call again.
    record = function.modules.copy_record.load(function.modules.models.CopyRequest.model_validate(request()))
    assert (record.status, record.refusal, record.calls) == ("REFUSED", name, 1)


def expect_destination(function: Function, **fields: object) -> None:
    function.reads.add_response(
        "get_image_set",
        image_set(DESTINATION, **fields),  # type: ignore[arg-type]
        {"datastoreId": DATASTORE, "imageSetId": DESTINATION},
    )


def refuse_copy_into_destination(function: Function, code: str, message: str) -> None:
    function.copies.add_client_error(
        "copy_image_set",
        service_error_code=code,
        http_status_code=400 if code.startswith("V") else 409,
        service_message=message,
        expected_params=copy_params({"imageSetId": DESTINATION, "latestVersionId": "1"}),
    )


def expect_documents(function: Function, source: dict[str, object], destination: dict[str, object]) -> None:
    expect_metadata(function, SOURCE, source, versionId="1")
    expect_metadata(function, DESTINATION, destination, versionId="1")


SERIES = seed.image_set_metadata(patient_number=4, study=1, series=[1])


@pytest.mark.parametrize("code", ["ValidationException", "ConflictException"])
def test_a_refusal_is_inconsistent_metadata_when_the_documents_differ_naming_elements_only(
    function: Function, code: str
) -> None:
    expect_source(function)
    expect_destination(function)
    refuse_copy_into_destination(function, code, "Rejected")  # the wording says nothing: the documents decide
    if code == "ConflictException":  # settled image sets at the versions named: not a lock or a moved version
        expect_source(function)
        expect_destination(function)
    other_description = json.loads(json.dumps(SERIES))
    other_description["Study"]["DICOM"]["StudyDescription"] = "SYNTHETIC MR BRAIN"
    expect_documents(function, other_description, SERIES)

    with pytest.raises(Exception) as raised:
        function.invoke(step("start_copy", request=request(destinationImageSetId=DESTINATION)))

    assert type(raised.value).__name__ == "InconsistentMetadata"
    assert "StudyDescription" in str(raised.value)
    assert "SYNTHETIC" not in str(raised.value)  # names, never values
    function.reads.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("code", "name"), [("ValidationException", "InvalidCopyRequest"), ("ConflictException", "CopyConflict")]
)
def test_a_message_about_inconsistency_is_not_evidence(function: Function, code: str, name: str) -> None:
    expect_source(function)
    expect_destination(function)
    refuse_copy_into_destination(function, code, "Inconsistent metadata mismatch: use force")
    if code == "ConflictException":
        expect_source(function)
        expect_destination(function)
    expect_documents(function, SERIES, SERIES)  # identical: whatever the message says, force cannot help

    with pytest.raises(Exception) as raised:
        function.invoke(step("start_copy", request=request(destinationImageSetId=DESTINATION)))

    assert type(raised.value).__name__ == name


def test_a_conflict_from_a_lock_stays_a_conflict_without_reading_metadata(function: Function) -> None:
    expect_source(function)
    expect_destination(function)
    refuse_copy_into_destination(function, "ConflictException", "locked")
    expect_source(function)
    expect_destination(function, state="LOCKED", workflow="COPYING")  # another writer got there first

    with pytest.raises(Exception) as raised:
        function.invoke(step("start_copy", request=request(destinationImageSetId=DESTINATION)))

    assert type(raised.value).__name__ == "CopyConflict"
    function.reads.assert_no_pending_responses()


def test_internal_server_error_after_the_call_is_ambiguous_and_never_retried_blindly(
    function: Function, capsys: pytest.CaptureFixture[str]
) -> None:
    expect_source(function)
    function.copies.add_client_error(
        "copy_image_set",
        service_error_code="InternalServerException",
        http_status_code=500,
        expected_params=copy_params(),
    )

    names = []
    for _ in range(2):  # the same request again (task retry, duplicate event): no second CopyImageSet
        with pytest.raises(Exception) as raised:
            function.invoke(step("start_copy", request=request()))
        names.append(type(raised.value).__name__)

    assert names == ["CopyOutcomeUnknown", "CopyOutcomeUnknown"]
    function.copies.assert_no_pending_responses()
    record = function.modules.copy_record.load(function.modules.models.CopyRequest.model_validate(request()))
    assert (record.status, record.calls) == ("CALLING", 1)
    assert emf_metrics(capsys.readouterr().out)["AmbiguousCopyOutcomes"] == 1


def test_an_accepted_copy_is_not_called_again_when_its_idempotency_record_is_lost(function: Function) -> None:
    """The copy record is completed when the service answers, before Powertools stores its result:
    if that store fails (or the process dies between the two), the retry still makes no second call."""
    expect_source(function)
    function.copies.add_response("copy_image_set", copy_answer(SOURCE, NEW), copy_params())
    first = function.invoke(step("start_copy", request=request()))
    dynamodb = function.modules.table.client()
    for item in dynamodb.scan(TableName=FUNCTION_ENV["IDEMPOTENCY_TABLE"])["Items"]:
        if item["id"]["S"].startswith(function.modules.copy_start.IDEMPOTENCY_KEY_PREFIX):
            dynamodb.delete_item(TableName=FUNCTION_ENV["IDEMPOTENCY_TABLE"], Key={"id": item["id"]})

    again = function.invoke(step("start_copy", request=request()))

    assert (again["destinationImageSetId"], again["destinationVersionId"]) == (NEW, "1")
    assert again["destinationImageSetId"] == first["destinationImageSetId"]
    function.copies.assert_no_pending_responses()


def test_duplicate_delivery_copies_exactly_once(function: Function, capsys: pytest.CaptureFixture[str]) -> None:
    expect_source(function)
    function.copies.add_response("copy_image_set", copy_answer(SOURCE, NEW), copy_params())

    answers = [function.invoke(step("start_copy", request=request(sourceVersionId="1"))) for _ in range(3)]

    assert {a["destinationImageSetId"] for a in answers} == {NEW}
    function.copies.assert_no_pending_responses()  # one CopyImageSet; a second would be unstubbed and fail
    assert emf_metrics(capsys.readouterr().out)["DuplicatesSuppressed"] == 2


@pytest.mark.parametrize(("role", "state"), [("source", "LOCKED"), ("destination", "LOCKED")])
def test_a_locked_image_set_is_a_conflict_without_spending_quota(function: Function, role: str, state: str) -> None:
    expect_source(function, state=state if role == "source" else "ACTIVE")
    if role == "destination":
        function.reads.add_response(
            "get_image_set",
            image_set(DESTINATION, state=state, workflow="COPYING"),
            {"datastoreId": DATASTORE, "imageSetId": DESTINATION},
        )

    with pytest.raises(Exception) as raised:
        function.invoke(step("start_copy", request=request(destinationImageSetId=DESTINATION)))

    assert type(raised.value).__name__ == "CopyConflict"
    assert f"{role} image set" in str(raised.value)
    function.copies.assert_no_pending_responses()


def test_a_pinned_version_that_moved_fails_clearly(function: Function) -> None:
    expect_source(function, version="3")

    with pytest.raises(Exception) as raised:
        function.invoke(step("start_copy", request=request(sourceVersionId="2")))

    assert type(raised.value).__name__ == "ImageSetVersionChanged"
    assert "version 3, not 2" in str(raised.value)


def test_a_deleted_destination_is_not_found(function: Function) -> None:
    expect_source(function)
    function.reads.add_response(
        "get_image_set",
        image_set(DESTINATION, state="DELETED", workflow="DELETED"),
        {"datastoreId": DATASTORE, "imageSetId": DESTINATION},
    )

    with pytest.raises(Exception) as raised:
        function.invoke(step("start_copy", request=request(destinationImageSetId=DESTINATION)))

    assert type(raised.value).__name__ == "ImageSetNotFound"


def test_the_copy_client_never_retries_copy_image_set(function: Function) -> None:
    client = function.modules.healthimaging.copy_client()
    assert client.meta.config.retries["total_max_attempts"] == 1


@pytest.mark.parametrize("function_env", [{**FUNCTION_ENV, "FORCE_POLICY": "never"}])
def test_force_asked_for_from_the_console_still_obeys_the_policy(function: Function) -> None:
    expect_source(function)
    function.reads.add_response(
        "get_image_set", image_set(DESTINATION), {"datastoreId": DATASTORE, "imageSetId": DESTINATION}
    )

    with pytest.raises(Exception) as raised:
        function.invoke(step("start_copy", request=request(destinationImageSetId=DESTINATION, force=True)))

    assert type(raised.value).__name__ == "ForceRefused"
    assert "force was asked for" in str(raised.value)
    function.copies.assert_no_pending_responses()  # no CopyImageSet was made


def test_a_pinned_destination_version_followed_only_by_failed_versions_has_not_moved(function: Function) -> None:
    """A failed copy keeps the content it was copied onto: the destination has not moved on."""
    expect_source(function)
    expect_destination(function, version="3")
    for version in ("2", "3"):
        function.reads.add_response(
            "get_image_set",
            image_set(DESTINATION, version=version, workflow="COPY_FAILED"),
            {"datastoreId": DATASTORE, "imageSetId": DESTINATION, "versionId": version},
        )
    function.copies.add_response(
        "copy_image_set",
        copy_answer(SOURCE, DESTINATION, version="4"),
        copy_params({"imageSetId": DESTINATION, "latestVersionId": "3"}),
    )

    progress = function.invoke(
        step("start_copy", request=request(destinationImageSetId=DESTINATION, destinationVersionId="1"))
    )

    assert (progress["baselineVersionId"], progress["destinationVersionId"]) == ("3", "4")


def test_a_pinned_destination_version_another_writer_moved_on_is_refused(function: Function) -> None:
    expect_source(function)
    expect_destination(function, version="2")
    function.reads.add_response(
        "get_image_set",
        image_set(DESTINATION, version="2", workflow="COPIED"),
        {"datastoreId": DATASTORE, "imageSetId": DESTINATION, "versionId": "2"},
    )

    with pytest.raises(Exception) as raised:
        function.invoke(
            step("start_copy", request=request(destinationImageSetId=DESTINATION, destinationVersionId="1"))
        )

    assert type(raised.value).__name__ == "ImageSetVersionChanged"
    assert "version 2, not 1" in str(raised.value)
    function.copies.assert_no_pending_responses()


def test_a_request_whose_calls_keep_landing_nothing_stops_with_a_named_error(function: Function) -> None:
    modules = function.modules
    parsed = modules.models.CopyRequest.model_validate(request())
    previous = None
    for _ in range(modules.copy_start.MAX_UNANSWERED_CALLS):
        previous = modules.copy_record.mark_not_accepted(
            modules.copy_record.begin_call(
                parsed, previous=previous, source_version_id="1", baseline_version_id=None, execution_id="test"
            )
        )

    with pytest.raises(Exception) as raised:
        function.invoke(step("start_copy", request=request()))

    assert type(raised.value).__name__ == "CopyFailed"
    assert "3 CopyImageSet calls" in str(raised.value)
    function.copies.assert_no_pending_responses()  # no fourth call
