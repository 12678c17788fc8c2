"""The HealthImaging emulator, through real boto3 clients (botocore serialises and parses)."""

from __future__ import annotations

import gzip
import json
import tracemalloc
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ReadTimeoutError

from offline import seed, wire
from offline.clock import VirtualClock
from offline.emulator import HealthImagingEmulator, ServiceError

DS = seed.DATASTORE_ID


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def emulator(clock: VirtualClock) -> HealthImagingEmulator:
    emulator = HealthImagingEmulator(clock=clock.now)
    emulator.create_datastore(DS)
    return emulator


@pytest.fixture
def client(emulator: HealthImagingEmulator) -> Any:
    client = boto3.client("medical-imaging", region_name="us-east-1", config=Config(retries={"total_max_attempts": 1}))
    wire.attach(client, emulator)
    return client


@pytest.fixture
def study(emulator: HealthImagingEmulator) -> dict[str, str]:
    return {
        "primary": emulator.seed_image_set(DS, seed.image_set_metadata(patient_number=1, study=1, series=[1, 2])),
        "consistent": emulator.seed_image_set(
            DS, seed.image_set_metadata(patient_number=1, study=1, series=[3]), is_primary=False
        ),
        "inconsistent": emulator.seed_image_set(
            DS,
            seed.image_set_metadata(patient_number=1, study=1, series=[4], study_description="SYNTHETIC MR"),
            is_primary=False,
        ),
    }


def copy(
    client: Any,
    source: str,
    destination: str | None = None,
    *,
    source_version: str = "1",
    destination_version: str = "1",
    **options: Any,
) -> dict[str, Any]:
    information: dict[str, Any] = {"sourceImageSet": {"latestVersionId": source_version}}
    if destination:
        information["destinationImageSet"] = {"imageSetId": destination, "latestVersionId": destination_version}
    return dict(
        client.copy_image_set(datastoreId=DS, sourceImageSetId=source, copyImageSetInformation=information, **options)
    )


def document(client: Any, image_set_id: str, version_id: str | None = None) -> dict[str, Any]:
    """GetImageSetMetadata, unzipped and parsed."""
    version = {"versionId": version_id} if version_id else {}
    blob = client.get_image_set_metadata(datastoreId=DS, imageSetId=image_set_id, **version)["imageSetMetadataBlob"]
    return dict(json.loads(gzip.decompress(blob.read())))


def status(client: Any, image_set_id: str, version_id: str | None = None) -> tuple[str, str, str]:
    """(versionId, imageSetState, imageSetWorkflowStatus) from GetImageSet."""
    version = {"versionId": version_id} if version_id else {}
    answer = client.get_image_set(datastoreId=DS, imageSetId=image_set_id, **version)
    return answer["versionId"], answer["imageSetState"], answer["imageSetWorkflowStatus"]


def error_of(call: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as raised:
        call()
    return raised.value.response["Error"]["Code"], raised.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_copy_into_a_new_image_set_is_asynchronous(client: Any, study: dict[str, str], clock: VirtualClock) -> None:
    answer = copy(client, study["primary"])
    new = answer["destinationImageSetProperties"]["imageSetId"]
    assert answer["destinationImageSetProperties"]["latestVersionId"] == "1"
    assert answer["sourceImageSetProperties"]["imageSetWorkflowStatus"] == "COPYING_WITH_READ_ONLY_ACCESS"
    assert status(client, new) == status(client, new, "1") == ("1", "LOCKED", "COPYING")
    assert document(client, new)["Study"]["Series"] == {}  # nothing has landed yet
    assert status(client, study["primary"]) == ("1", "LOCKED", "COPYING_WITH_READ_ONLY_ACCESS")

    clock.advance(60)

    assert status(client, new) == ("1", "ACTIVE", "COPIED")
    assert len(document(client, new)["Study"]["Series"]) == 2
    assert status(client, study["primary"]) == ("1", "ACTIVE", "CREATED")  # no new source version
    versions = client.list_image_set_versions(datastoreId=DS, imageSetId=study["primary"])["imageSetPropertiesList"]
    assert [v["versionId"] for v in versions] == ["1"]


def test_a_failed_copy_into_a_new_image_set_leaves_an_empty_version_1(
    client: Any, study: dict[str, str], emulator: HealthImagingEmulator, clock: VirtualClock
) -> None:
    emulator.faults.copy_faults.append("fail-later:Frame storage error")
    new = copy(client, study["primary"])["destinationImageSetProperties"]["imageSetId"]
    clock.advance(60)
    failed = client.get_image_set(datastoreId=DS, imageSetId=new)
    assert (failed["versionId"], failed["imageSetState"], failed["imageSetWorkflowStatus"]) == (
        "1",
        "ACTIVE",
        "COPY_FAILED",
    )
    assert failed["message"] == "Frame storage error"
    assert document(client, new)["Study"]["Series"] == {}


def test_copy_into_an_existing_image_set_makes_the_next_version_at_once(
    client: Any, study: dict[str, str], clock: VirtualClock
) -> None:
    answer = copy(client, study["consistent"], study["primary"])
    produced = answer["destinationImageSetProperties"]
    assert (produced["latestVersionId"], produced["imageSetState"], produced["imageSetWorkflowStatus"]) == (
        "2",
        "LOCKED",
        "COPYING",
    )
    assert status(client, study["primary"]) == ("2", "LOCKED", "COPYING")
    assert status(client, study["primary"], "1") == ("1", "ACTIVE", "CREATED")
    assert len(document(client, study["primary"], "2")["Study"]["Series"]) == 2  # version 1's content until it lands
    assert status(client, study["consistent"]) == ("1", "LOCKED", "COPYING_WITH_READ_ONLY_ACCESS")

    clock.advance(60)

    assert status(client, study["primary"]) == ("2", "ACTIVE", "COPIED")
    assert len(document(client, study["primary"])["Study"]["Series"]) == 3
    assert len(document(client, study["primary"], "1")["Study"]["Series"]) == 2  # each version keeps its document
    assert status(client, study["consistent"]) == ("1", "ACTIVE", "CREATED")


def test_an_unknown_version_is_not_found(client: Any, study: dict[str, str]) -> None:
    for call in (client.get_image_set, client.get_image_set_metadata):
        assert error_of(lambda call=call: call(datastoreId=DS, imageSetId=study["primary"], versionId="2")) == (
            "ResourceNotFoundException",
            404,
        )


def test_versions_are_listed_newest_first_in_pages(client: Any, study: dict[str, str], clock: VirtualClock) -> None:
    copy(client, study["consistent"], study["primary"])
    clock.advance(60)
    copy(client, study["inconsistent"], study["primary"], destination_version="2")  # fails: inconsistent
    clock.advance(60)
    pages = client.get_paginator("list_image_set_versions").paginate(
        datastoreId=DS, imageSetId=study["primary"], PaginationConfig={"PageSize": 2}
    )
    listed = [v for page in pages for v in page["imageSetPropertiesList"]]
    assert [(v["versionId"], v["ImageSetWorkflowStatus"]) for v in listed] == [
        ("3", "COPY_FAILED"),
        ("2", "COPIED"),
        ("1", "CREATED"),
    ]
    assert "StudyDescription" in listed[0]["message"]


def test_merge_adds_a_version_and_the_series(client: Any, study: dict[str, str], clock: VirtualClock) -> None:
    copy(client, study["consistent"], study["primary"])
    clock.advance(60)
    versions = client.list_image_set_versions(datastoreId=DS, imageSetId=study["primary"])["imageSetPropertiesList"]
    assert [v["versionId"] for v in versions] == ["2", "1"]
    blob = client.get_image_set_metadata(datastoreId=DS, imageSetId=study["primary"])["imageSetMetadataBlob"].read()
    series = json.loads(gzip.decompress(blob))["Study"]["Series"]
    assert len(series) == 3
    assert client.get_image_set(datastoreId=DS, imageSetId=study["primary"], versionId="1")["versionId"] == "1"


def test_locked_destination_and_stale_versions_conflict(
    client: Any, study: dict[str, str], clock: VirtualClock
) -> None:
    copy(client, study["consistent"], study["primary"])
    clock.advance(10)  # a token for the next call, the first copy still running
    assert error_of(lambda: copy(client, study["inconsistent"], study["primary"], force=True)) == (
        "ConflictException",
        409,
    )
    clock.advance(60)
    assert error_of(lambda: copy(client, study["inconsistent"], study["primary"], force=True)) == (
        "ConflictException",
        409,
    )
    clock.advance(10)
    assert copy(client, study["inconsistent"], study["primary"], destination_version="2", force=True)


def test_inconsistent_metadata_fails_later_without_force_and_succeeds_with_it(
    client: Any, study: dict[str, str], clock: VirtualClock
) -> None:
    assert (
        copy(client, study["inconsistent"], study["primary"])["destinationImageSetProperties"]["latestVersionId"] == "2"
    )
    clock.advance(60)
    failed = client.get_image_set(datastoreId=DS, imageSetId=study["primary"])
    assert failed["imageSetWorkflowStatus"] == "COPY_FAILED" and "StudyDescription" in failed["message"]
    assert failed["versionId"] == "2"  # a failed copy still makes its version, holding version 1's content
    assert document(client, study["primary"], "2") == document(client, study["primary"], "1")

    copy(client, study["inconsistent"], study["primary"], destination_version="2", force=True)
    clock.advance(60)
    forced = client.get_image_set(datastoreId=DS, imageSetId=study["primary"])
    assert (forced["imageSetWorkflowStatus"], forced["versionId"], forced["overrides"]) == (
        "COPIED",
        "3",
        {"forced": True},
    )


def test_inconsistent_metadata_can_fail_at_once(
    client: Any, study: dict[str, str], emulator: HealthImagingEmulator
) -> None:
    emulator.inconsistency_mode = "immediate"
    assert error_of(lambda: copy(client, study["inconsistent"], study["primary"])) == ("ValidationException", 400)
    assert status(client, study["primary"]) == ("1", "ACTIVE", "CREATED")  # refused: no version made


def test_inconsistent_metadata_in_immediate_mode_copies_with_force(
    client: Any, study: dict[str, str], emulator: HealthImagingEmulator, clock: VirtualClock
) -> None:
    emulator.inconsistency_mode = "immediate"
    copy(client, study["inconsistent"], study["primary"], force=True)
    clock.advance(60)
    assert status(client, study["primary"]) == ("2", "ACTIVE", "COPIED")
    assert emulator.forced(study["primary"]) is True


def subset_copy(client: Any, source: str, *, promote: bool) -> tuple[str, str, str]:
    """Copy the first instance of the source's first series into a new image set: (new id, series, instance)."""
    series_uid, series = next(iter(document(client, source)["Study"]["Series"].items()))
    instance = next(iter(series["Instances"]))
    attributes = json.dumps({"SchemaVersion": "1.1", "Study": {"Series": {series_uid: {"Instances": {instance: {}}}}}})
    answer = client.copy_image_set(
        datastoreId=DS,
        sourceImageSetId=source,
        promoteToPrimary=promote,
        copyImageSetInformation={
            "sourceImageSet": {"latestVersionId": "1", "DICOMCopies": {"copiableAttributes": attributes}}
        },
    )
    return answer["destinationImageSetProperties"]["imageSetId"], series_uid, instance


def test_subset_copy_and_promote_to_primary(client: Any, study: dict[str, str], clock: VirtualClock) -> None:
    new, series_uid, instance = subset_copy(client, study["consistent"], promote=True)  # series 3 has no primary
    assert client.get_image_set(datastoreId=DS, imageSetId=new)["isPrimary"] is False  # until the copy lands
    clock.advance(60)
    copied = document(client, new)
    assert list(copied["Study"]["Series"]) == [series_uid]
    assert list(copied["Study"]["Series"][series_uid]["Instances"]) == [instance]
    assert client.get_image_set(datastoreId=DS, imageSetId=new)["isPrimary"] is True


def test_promoting_a_series_that_has_a_primary_fails_the_copy(
    client: Any, study: dict[str, str], clock: VirtualClock
) -> None:
    new, _, _ = subset_copy(client, study["primary"], promote=True)
    clock.advance(60)
    failed = client.get_image_set(datastoreId=DS, imageSetId=new)
    assert (failed["imageSetWorkflowStatus"], failed["isPrimary"]) == ("COPY_FAILED", False)
    assert "primary image set of this series exists" in failed["message"]


def test_seeding_keeps_one_primary_per_series(emulator: HealthImagingEmulator, client: Any) -> None:
    def series_image_set(series: int, instances: list[int], is_primary: bool | None = None) -> str:
        metadata = seed.series_image_set_metadata(patient_number=7, study=1, series=series, instances=instances)
        return emulator.seed_image_set(DS, metadata, is_primary=is_primary)

    def is_primary(image_set_id: str) -> bool:
        return bool(client.get_image_set(datastoreId=DS, imageSetId=image_set_id)["isPrimary"])

    first = series_image_set(1, [1, 2])
    conflicting = series_image_set(1, [3])  # the same series again: kept as non-primary
    other_series = series_image_set(2, [1])
    assert [is_primary(i) for i in (first, conflicting, other_series)] == [True, False, True]
    with pytest.raises(ValueError, match="already primary"):
        series_image_set(1, [4], is_primary=True)
    emulator.delete_image_set(DS, first)
    assert is_primary(series_image_set(1, [5]))
    assert emulator.instances(conflicting) == {seed.instance_uid(7, 1, 1, 3)}


def test_copy_image_set_quota_is_one_burst_then_a_quarter_per_second(
    client: Any, study: dict[str, str], clock: VirtualClock
) -> None:
    copy(client, study["primary"])
    assert error_of(lambda: copy(client, study["consistent"])) == ("ThrottlingException", 429)
    clock.advance(3.9)
    assert error_of(lambda: copy(client, study["consistent"])) == ("ThrottlingException", 429)
    clock.advance(0.1)
    assert copy(client, study["consistent"])


def test_another_client_of_the_account_s_quota_takes_its_tokens(
    client: Any, study: dict[str, str], clock: VirtualClock, emulator: HealthImagingEmulator
) -> None:
    """A client sharing the account's quota (takes_quota) takes a token for each call, or is throttled; another
    writer without it stands outside the pipeline's bucket."""
    theirs = emulator.schedule_copy(clock.now(), study["primary"], takes_quota=True)
    assert error_of(lambda: copy(client, study["consistent"])) == ("ThrottlingException", 429)  # they took it
    refused = emulator.schedule_copy(clock.now() + 1, study["inconsistent"], takes_quota=True)
    outside = emulator.schedule_copy(clock.now() + 2, study["inconsistent"])
    clock.advance(4)
    assert copy(client, study["consistent"])  # a token again, 4 s after theirs
    assert theirs.accepted is not None and theirs.refusal is None
    assert refused.accepted is None and refused.refusal is not None and refused.refusal.code == "ThrottlingException"
    assert outside.accepted is not None  # no token taken
    assert emulator.copy_image_set_calls() == [429, 200]  # the pipeline's own calls only


def test_search_by_study_and_primary_flag(client: Any, study: dict[str, str]) -> None:
    found = client.search_image_sets(
        datastoreId=DS,
        searchCriteria={
            "filters": [
                {"values": [{"DICOMStudyInstanceUID": f"{seed.UID_ROOT}.1.1"}], "operator": "EQUAL"},
                {"values": [{"isPrimary": True}], "operator": "EQUAL"},
            ]
        },
    )["imageSetsMetadataSummaries"]
    assert [s["imageSetId"] for s in found] == [study["primary"]]


@pytest.mark.parametrize(("code", "status"), sorted(ServiceError.STATUS.items()))
def test_every_documented_error_has_its_status_and_parses(
    client: Any, study: dict[str, str], emulator: HealthImagingEmulator, code: str, status: int
) -> None:
    emulator.faults.copy_faults.append(f"error:{code}")
    assert error_of(lambda: copy(client, study["primary"])) == (code, status)


def test_natural_errors(client: Any, study: dict[str, str], emulator: HealthImagingEmulator) -> None:
    assert error_of(lambda: client.get_image_set(datastoreId=DS, imageSetId="0" * 32)) == (
        "ResourceNotFoundException",
        404,
    )
    assert error_of(lambda: client.get_image_set(datastoreId="f" * 32, imageSetId=study["primary"])) == (
        "ResourceNotFoundException",
        404,
    )
    assert error_of(lambda: client.get_image_set(datastoreId=DS, imageSetId="NOPE")) == ("ValidationException", 400)
    assert error_of(lambda: copy(client, study["primary"], source_version="9")) == ("ConflictException", 409)
    emulator.delete_image_set(DS, study["consistent"])
    assert client.get_image_set(datastoreId=DS, imageSetId=study["consistent"])["imageSetState"] == "DELETED"


def test_concurrent_copy_quota(
    client: Any, study: dict[str, str], emulator: HealthImagingEmulator, clock: VirtualClock
) -> None:
    emulator.max_concurrent_copies = 1
    copy(client, study["primary"])
    clock.advance(5)
    assert error_of(lambda: copy(client, study["consistent"])) == ("ServiceQuotaExceededException", 402)


def test_the_accepted_then_500_fault_copies_and_answers_500(
    client: Any, study: dict[str, str], emulator: HealthImagingEmulator
) -> None:
    emulator.faults.copy_faults.append("accept-then-500")
    assert error_of(lambda: copy(client, study["primary"])) == ("InternalServerException", 500)
    assert client.get_image_set(datastoreId=DS, imageSetId=study["primary"])["imageSetState"] == "LOCKED"


def test_the_accepted_then_timeout_fault_copies_and_never_answers(
    client: Any, study: dict[str, str], emulator: HealthImagingEmulator, clock: VirtualClock
) -> None:
    emulator.faults.copy_faults.append("accept-then-timeout")
    with pytest.raises(ReadTimeoutError):
        copy(client, study["consistent"], study["primary"])
    [accepted] = emulator.accepted_copies(study["consistent"])
    assert (accepted.destination_id, accepted.destination_version_id) == (study["primary"], 2)
    clock.advance(60)
    assert status(client, study["primary"]) == ("2", "ACTIVE", "COPIED")


@pytest.fixture
def http_client(emulator: HealthImagingEmulator) -> Iterator[Any]:
    server = wire.serve(emulator)
    yield boto3.client(
        "medical-imaging",
        region_name="us-east-1",
        endpoint_url=f"http://127.0.0.1:{server.server_address[1]}",
        config=Config(inject_host_prefix=False, retries={"total_max_attempts": 1}),
    )
    server.shutdown()


def test_the_http_endpoint_speaks_the_same_wire_format(http_client: Any, study: dict[str, str]) -> None:
    assert http_client.get_image_set(datastoreId=DS, imageSetId=study["primary"])["versionId"] == "1"
    blob = http_client.get_image_set_metadata(datastoreId=DS, imageSetId=study["primary"])["imageSetMetadataBlob"]
    assert json.loads(gzip.decompress(blob.read()))["ImageSetID"] == study["primary"]
    answer = copy(http_client, study["consistent"], study["primary"])
    assert answer["destinationImageSetProperties"]["imageSetWorkflowStatus"] == "COPYING"
    assert error_of(lambda: copy(http_client, study["inconsistent"])) == ("ThrottlingException", 429)


def test_accepted_copies_record_who_asked_and_what_they_produced(
    client: Any, study: dict[str, str], emulator: HealthImagingEmulator, clock: VirtualClock
) -> None:
    copy(client, study["consistent"], study["primary"])
    [accepted] = emulator.accepted_copies(study["consistent"])
    assert (accepted.by, accepted.destination_id, accepted.destination_version_id, accepted.outcome) == (
        "pipeline",
        study["primary"],
        2,
        None,
    )
    assert emulator.accepted_copies(study["consistent"], by="someone else") == []
    clock.advance(60)
    assert emulator.accepted_copies(study["consistent"])[0].outcome == "COPIED"


def test_instances_and_forced_per_version(
    client: Any, study: dict[str, str], emulator: HealthImagingEmulator, clock: VirtualClock
) -> None:
    study_uid = f"{seed.UID_ROOT}.1.1"
    primary_instances = {f"{study_uid}.{s}.{i}" for s in (1, 2) for i in (1, 2)}
    copy(client, study["consistent"], study["primary"])
    clock.advance(60)
    copy(client, study["inconsistent"], study["primary"], destination_version="2", force=True)
    clock.advance(60)
    assert emulator.instances(study["primary"], 1) == primary_instances
    assert emulator.instances(study["primary"], "2") == primary_instances | {f"{study_uid}.3.1", f"{study_uid}.3.2"}
    assert emulator.instances(study["primary"]) == emulator.instances(study["primary"], 2) | {
        f"{study_uid}.4.1",
        f"{study_uid}.4.2",
    }
    assert [emulator.forced(study["primary"], v) for v in (1, 2, 3)] == [False, False, True]
    assert emulator.forced(study["primary"]) is True


def test_another_writers_copy_locks_the_destination_on_the_clock(
    client: Any, study: dict[str, str], emulator: HealthImagingEmulator, clock: VirtualClock
) -> None:
    other = emulator.schedule_copy(clock.now() + 10, study["inconsistent"], study["primary"], force=True)
    clock.advance(20)
    assert error_of(lambda: copy(client, study["consistent"], study["primary"])) == ("ConflictException", 409)
    assert status(client, study["primary"]) == ("2", "LOCKED", "COPYING")
    assert other.accepted is not None and other.refusal is None
    assert (other.accepted.by, other.accepted.accepted_at) == ("other-writer", other.at)
    clock.advance(45)
    assert status(client, study["primary"]) == ("2", "ACTIVE", "COPIED")
    assert emulator.forced(study["primary"], 2) is True
    assert emulator.accepted_copies(study["inconsistent"]) == []  # the pipeline asked for nothing
    assert emulator.accepted_copies(study["inconsistent"], by="other-writer") == [other.accepted]
    assert emulator.accepted_copies(study["inconsistent"], by=None) == [other.accepted]


def test_writes_and_landings_run_in_time_order_each_at_its_own_time(
    client: Any, study: dict[str, str], emulator: HealthImagingEmulator, clock: VirtualClock
) -> None:
    t0 = clock.now()
    other = emulator.seed_image_set(
        DS, seed.image_set_metadata(patient_number=1, study=1, series=[9]), is_primary=False
    )
    copy(client, study["consistent"], study["primary"])  # version 2, lands at t0 + 45
    refused_update = emulator.schedule_metadata_update(t0 + 30, study["primary"])  # version 2 still copying
    update = emulator.schedule_metadata_update(t0 + 50, study["primary"])  # version 3, UPDATING until t0 + 55
    refused_copy = emulator.schedule_copy(t0 + 52, other, study["primary"])
    failing_copy = emulator.schedule_copy(
        t0 + 60, other, study["primary"], outcome="COPY_FAILED", message="Frame storage error"
    )  # version 4, lands at t0 + 105

    clock.advance(500)  # one call settles it all

    versions = client.list_image_set_versions(datastoreId=DS, imageSetId=study["primary"])["imageSetPropertiesList"]
    assert [(v["versionId"], v["ImageSetWorkflowStatus"], v["updatedAt"].timestamp()) for v in versions] == [
        ("4", "COPY_FAILED", t0 + 105),
        ("3", "UPDATED", t0 + 55),
        ("2", "COPIED", t0 + 45),
        ("1", "CREATED", t0),
    ]
    assert versions[0]["message"] == "Frame storage error"
    assert refused_update.refusal is not None and refused_update.refusal.code == "ConflictException"
    assert update.version_id == 3 and update.refusal is None
    assert refused_copy.refusal is not None and refused_copy.refusal.code == "ConflictException"
    assert failing_copy.accepted is not None and failing_copy.accepted.outcome == "COPY_FAILED"
    assert emulator.instances(study["primary"], 4) == emulator.instances(study["primary"], 2)


def test_another_writers_metadata_update_makes_the_next_copy_inconsistent(
    client: Any, study: dict[str, str], emulator: HealthImagingEmulator, clock: VirtualClock
) -> None:
    emulator.schedule_metadata_update(
        clock.now() + 1,
        study["primary"],
        updatable_attributes={"Study": {"DICOM": {"StudyDescription": "SYNTHETIC CT CHEST RENAMED"}}},
    )
    clock.advance(2)
    assert status(client, study["primary"]) == ("2", "LOCKED", "UPDATING")
    clock.advance(10)
    assert status(client, study["primary"]) == ("2", "ACTIVE", "UPDATED")
    assert document(client, study["primary"])["Study"]["DICOM"]["StudyDescription"] == "SYNTHETIC CT CHEST RENAMED"
    assert error_of(lambda: copy(client, study["consistent"], study["primary"])) == ("ConflictException", 409)
    clock.advance(4)
    copy(client, study["consistent"], study["primary"], destination_version="2")
    clock.advance(60)
    failed = client.get_image_set(datastoreId=DS, imageSetId=study["primary"])
    assert (failed["versionId"], failed["imageSetWorkflowStatus"]) == ("3", "COPY_FAILED")
    assert "StudyDescription" in failed["message"]


def test_other_writers_copies_count_against_the_concurrency_quota_but_not_the_token_bucket(
    client: Any, study: dict[str, str], emulator: HealthImagingEmulator, clock: VirtualClock
) -> None:
    emulator.max_concurrent_copies = 1
    emulator.schedule_copy(clock.now(), study["consistent"])
    assert error_of(lambda: copy(client, study["primary"])) == ("ServiceQuotaExceededException", 402)


def test_scheduled_writes_are_checked_where_they_are_written(
    study: dict[str, str], emulator: HealthImagingEmulator, clock: VirtualClock
) -> None:
    later = clock.now() + 10
    with pytest.raises(ValueError, match="past"):
        emulator.schedule_copy(clock.now() - 1, study["consistent"])
    with pytest.raises(ValueError, match="message pattern"):
        emulator.schedule_copy(later, study["consistent"], outcome="COPY_FAILED", message="no; semicolons")
    with pytest.raises(ValueError, match="COPY_FAILED only"):
        emulator.schedule_copy(later, study["consistent"], message="Frame storage error")
    with pytest.raises(ValueError, match="other writer"):
        emulator.schedule_metadata_update(later, study["primary"], by="pipeline")


def test_merging_a_non_primary_image_set_into_the_primary_of_its_series(
    client: Any, emulator: HealthImagingEmulator, clock: VirtualClock
) -> None:
    primary = emulator.seed_image_set(DS, seed.series_image_set_metadata(patient_number=7, study=1, series=1))
    conflicting = emulator.seed_image_set(
        DS, seed.series_image_set_metadata(patient_number=7, study=1, series=1, instances=[3])
    )
    copy(client, conflicting, primary)
    clock.advance(60)
    assert status(client, primary) == ("2", "ACTIVE", "COPIED")
    assert emulator.instances(primary) == {seed.instance_uid(7, 1, 1, i) for i in (1, 2, 3)}
    assert emulator.instances(primary, 1) == {seed.instance_uid(7, 1, 1, i) for i in (1, 2)}


@pytest.fixture
def series(emulator: HealthImagingEmulator) -> dict[str, str]:
    """Series-level image sets of one study: series 1 twice (primary, non-primary), series 2 once."""

    def image_set(series: int, instances: list[int]) -> str:
        metadata = seed.series_image_set_metadata(patient_number=7, study=1, series=series, instances=instances)
        return emulator.seed_image_set(DS, metadata)

    return {"primary": image_set(1, [1, 2]), "conflicting": image_set(1, [3]), "other_series": image_set(2, [1])}


def search(client: Any, *filters: tuple[str, str, Any], **options: Any) -> list[dict[str, Any]]:
    """SearchImageSets with (attribute, operator, value or (low, high)) filters, every page."""
    criteria: dict[str, Any] = {
        "filters": [
            {"values": [{name: v} for v in (value if operator == "BETWEEN" else [value])], "operator": operator}
            for name, operator, value in filters
        ],
        **options,
    }
    pages = client.get_paginator("search_image_sets").paginate(datastoreId=DS, searchCriteria=criteria)
    return [summary for page in pages for summary in page["imageSetsMetadataSummaries"]]


def test_search_finds_the_primary_of_a_series(client: Any, series: dict[str, str]) -> None:
    series_1 = seed.series_uid(7, 1, 1)
    found = search(client, ("DICOMSeriesInstanceUID", "EQUAL", series_1), ("isPrimary", "EQUAL", True))
    assert [s["imageSetId"] for s in found] == [series["primary"]]
    found = search(client, ("DICOMStudyInstanceUID", "EQUAL", seed.study_uid(7, 1)), ("isPrimary", "EQUAL", False))
    assert [s["imageSetId"] for s in found] == [series["conflicting"]]
    found = search(client, ("DICOMSeriesInstanceUID", "EQUAL", series_1))
    assert [s["imageSetId"] for s in found] == [series["primary"], series["conflicting"]]


def test_a_search_sees_what_a_copy_changed_since_the_last_search(
    client: Any, series: dict[str, str], clock: VirtualClock
) -> None:
    """The emulator keeps each image set's search fields between searches: a new version is read again."""
    series_2 = seed.series_uid(7, 1, 2)
    before = search(client, ("DICOMSeriesInstanceUID", "EQUAL", series_2))
    copy(client, series["other_series"], series["primary"])
    clock.advance(60)
    after = search(client, ("DICOMSeriesInstanceUID", "EQUAL", series_2))
    assert [s["imageSetId"] for s in before] == [series["other_series"]]
    assert sorted(s["imageSetId"] for s in after) == sorted([series["other_series"], series["primary"]])


def test_search_takes_at_most_two_filters(client: Any, series: dict[str, str]) -> None:
    three = [
        ("DICOMStudyInstanceUID", "EQUAL", seed.study_uid(7, 1)),
        ("DICOMSeriesInstanceUID", "EQUAL", seed.series_uid(7, 1, 1)),
        ("isPrimary", "EQUAL", True),
    ]
    assert error_of(lambda: search(client, *three)) == ("ValidationException", 400)


def test_search_rejects_filters_the_api_does_not_have(client: Any, series: dict[str, str]) -> None:
    assert error_of(lambda: search(client, ("DICOMPatientId", "BETWEEN", ("A", "B")))) == ("ValidationException", 400)
    two_values = {"values": [{"isPrimary": True}, {"isPrimary": False}], "operator": "EQUAL"}
    assert error_of(lambda: client.search_image_sets(datastoreId=DS, searchCriteria={"filters": [two_values]})) == (
        "ValidationException",
        400,
    )


def test_search_summaries_describe_the_latest_version_and_its_one_series(
    client: Any, series: dict[str, str], study: dict[str, str], clock: VirtualClock
) -> None:
    copy(client, series["conflicting"], series["primary"])
    [during] = search(
        client, ("DICOMSeriesInstanceUID", "EQUAL", seed.series_uid(7, 1, 1)), ("isPrimary", "EQUAL", True)
    )
    assert (during["version"], during["DICOMTags"]["DICOMNumberOfStudyRelatedInstances"]) == (2, 2)
    clock.advance(60)
    [after] = search(
        client, ("DICOMSeriesInstanceUID", "EQUAL", seed.series_uid(7, 1, 1)), ("isPrimary", "EQUAL", True)
    )
    assert (after["version"], after["DICOMTags"]["DICOMNumberOfStudyRelatedInstances"]) == (2, 3)
    tags = after["DICOMTags"]
    assert (tags["DICOMSeriesInstanceUID"], tags["DICOMSeriesModality"], tags["DICOMSeriesNumber"]) == (
        seed.series_uid(7, 1, 1),
        "CT",
        1,
    )
    assert tags["DICOMPatientId"] == "FAKE-MRN-000007"
    [several_series] = search(
        client, ("DICOMStudyInstanceUID", "EQUAL", seed.study_uid(1, 1)), ("isPrimary", "EQUAL", True)
    )
    assert several_series["imageSetId"] == study["primary"]
    assert "DICOMSeriesInstanceUID" not in several_series["DICOMTags"]


def test_search_by_patient_accession_and_time_ranges_sorted(
    client: Any, series: dict[str, str], study: dict[str, str], clock: VirtualClock
) -> None:
    created = clock.now()
    clock.advance(100)
    copy(client, series["conflicting"], series["primary"])
    clock.advance(60)
    landed = clock.now() - 15  # the copy landed 45 s after it was accepted
    by_patient = search(client, ("DICOMPatientId", "EQUAL", "FAKE-MRN-000007"))
    assert {s["imageSetId"] for s in by_patient} == set(series.values())
    assert {s["imageSetId"] for s in search(client, ("DICOMAccessionNumber", "EQUAL", "FAKE-ACC-11"))} == set(
        study.values()
    )
    assert len(search(client, ("createdAt", "BETWEEN", (created - 1, created + 1)))) == 6
    recently_updated = search(client, ("updatedAt", "BETWEEN", (landed - 1, landed + 1)))
    assert {s["imageSetId"] for s in recently_updated} == {series["primary"], series["conflicting"]}
    newest_first = search(client, ("isPrimary", "EQUAL", True), sort={"sortField": "updatedAt", "sortOrder": "DESC"})
    assert newest_first[0]["imageSetId"] == series["primary"]


def test_a_forced_copy_keeps_the_destinations_own_study_and_series_values(
    client: Any, study: dict[str, str], clock: VirtualClock
) -> None:
    copy(client, study["inconsistent"], study["primary"], force=True)
    clock.advance(60)
    merged = document(client, study["primary"])
    assert merged["Study"]["DICOM"]["StudyDescription"] == "SYNTHETIC CT CHEST"  # the source says SYNTHETIC MR
    assert seed.series_uid(1, 1, 4) in merged["Study"]["Series"]


def test_records_leave_documents_out_of_their_repr(
    client: Any, study: dict[str, str], emulator: HealthImagingEmulator
) -> None:
    copy(client, study["consistent"], study["primary"])
    records = [emulator.image_sets[(DS, study["primary"])], *emulator.accepted]
    assert not [r for r in records if "SYNTHETIC" in repr(r) or "FAKE-" in repr(r)]


def test_a_destination_deleted_mid_copy_gets_nothing(
    client: Any, study: dict[str, str], emulator: HealthImagingEmulator, clock: VirtualClock
) -> None:
    copy(client, study["consistent"], study["primary"])
    emulator.delete_image_set(DS, study["primary"])
    clock.advance(60)
    assert status(client, study["primary"]) == ("2", "DELETED", "DELETED")
    assert emulator.accepted_copies(study["consistent"])[0].outcome is None  # it landed nowhere
    assert status(client, study["consistent"]) == ("1", "ACTIVE", "CREATED")


# --- copy outcome events: what HealthImaging sends to EventBridge when a copy lands -------------------
def test_a_copy_that_lands_announces_itself_about_its_destination_and_the_version_it_made(
    client: Any, study: dict[str, str], emulator: HealthImagingEmulator, clock: VirtualClock
) -> None:
    heard: list[dict[str, Any]] = []
    scheduled: list[float] = []
    emulator.event_listeners.append(heard.append)
    emulator.timeline_listeners.append(scheduled.append)
    t0 = clock.now()
    new = copy(client, study["consistent"])["destinationImageSetProperties"]["imageSetId"]
    clock.advance(4)  # the next CopyImageSet token
    emulator.faults.copy_faults.append("fail-later:Frame storage error")
    copy(client, study["inconsistent"], study["primary"], force=True)
    assert scheduled == [t0 + 45, t0 + 49] and heard == []  # told when, announced only when it happens
    clock.advance(45)
    emulator.settle()
    assert [(e["detail-type"], e["detail"]["imageSetId"], e["detail"]["imageSetWorkflowStatus"]) for e in heard] == [
        ("Image Set Copied", new, "COPIED"),
        ("Image Set Copy Failed", study["primary"], "COPY_FAILED"),
    ]
    (copied, failed) = heard
    assert (copied["source"], copied["time"]) == ("aws.medical-imaging", "2026-01-01T00:00:45Z")
    assert copied["detail"] == {  # the developer guide's example's fields (event-notifications)
        "imagingVersion": "1.0",
        "datastoreId": DS,
        "imageSetId": new,
        "imageSetVersion": "1",
        "isPrimary": False,
        "imageSetState": "ACTIVE",
        "imageSetWorkflowStatus": "COPIED",
    }
    primary = client.get_image_set(datastoreId=DS, imageSetId=study["primary"])
    assert (failed["detail"]["imageSetVersion"], failed["detail"]["isPrimary"]) == (primary["versionId"], True)


def test_another_writers_copy_is_announced_too_and_a_deleted_destination_not_at_all(
    client: Any, study: dict[str, str], emulator: HealthImagingEmulator, clock: VirtualClock
) -> None:
    heard: list[dict[str, Any]] = []
    emulator.event_listeners.append(heard.append)
    emulator.schedule_copy(clock.now(), study["inconsistent"], study["primary"], force=True)
    copy(client, study["consistent"])
    emulator.delete_image_set(DS, emulator.accepted[-1].destination_id)
    clock.advance(60)
    emulator.settle()
    assert [e["detail"]["imageSetId"] for e in heard] == [study["primary"]]


def test_large_documents_are_served_as_seeded_and_merged_instance_by_instance(
    emulator: HealthImagingEmulator, client: Any, clock: VirtualClock
) -> None:
    """A whole-slide image and a CT series at realistic sizes: GetImageSetMetadata answers what was seeded,
    and a merge holds both image sets' instances, each as it was."""
    slide = seed.slide_image_set_metadata(patient_number=5, study=1, series=1, frames=20_000)
    ct = seed.ct_image_set_metadata(patient_number=5, study=1, series=2, instances=range(1, 5_001))
    slide_id, ct_id = emulator.seed_image_set(DS, slide), emulator.seed_image_set(DS, ct)
    expected = {"SchemaVersion": "1.1", "DatastoreID": DS}
    assert document(client, slide_id) == {**slide, **expected, "ImageSetID": slide_id}
    assert document(client, ct_id) == {**ct, **expected, "ImageSetID": ct_id}

    copy(client, slide_id, ct_id)
    clock.advance(60)
    merged = document(client, ct_id)["Study"]["Series"]
    assert merged == {**ct["Study"]["Series"], **slide["Study"]["Series"]}
    assert document(client, ct_id, "1") == {**ct, **expected, "ImageSetID": ct_id}  # version 1 as it was


def test_a_large_document_is_kept_at_about_its_json_size(emulator: HealthImagingEmulator) -> None:
    ct = seed.ct_image_set_metadata(patient_number=5, study=1, series=2, instances=range(1, 10_001))
    size = len(json.dumps(ct, separators=(",", ":")))
    tracemalloc.start()
    try:
        emulator.seed_image_set(DS, ct)
        kept = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert kept < 1.5 * size, (kept, size)  # parsed, this one takes 2.4 times its JSON (real ones more)
