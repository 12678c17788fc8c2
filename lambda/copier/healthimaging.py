"""The HealthImaging calls one copy needs, with service errors turned into ours.

Two clients: reads use botocore's standard retries; CopyImageSet gets none, because
the API has no client token and a blind retry after an accepted request is a second copy.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from contextlib import closing
from functools import lru_cache
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionError, HTTPClientError, IncompleteReadError, ReadTimeoutError

from copier import errors, metadata

HealthImagingClient = Any  # boto3's "medical-imaging" client (no stubs pinned here)

READ_CONFIG = Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=5, read_timeout=20)
COPY_READ_TIMEOUT_SECONDS = 30
COPY_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=5, read_timeout=COPY_READ_TIMEOUT_SECONDS
)


@lru_cache(maxsize=1)
def read_client() -> HealthImagingClient:
    return boto3.client("medical-imaging", config=READ_CONFIG)


@lru_cache(maxsize=1)
def copy_client() -> HealthImagingClient:
    return boto3.client("medical-imaging", config=COPY_CONFIG)


def translate(error: ClientError, subject: str) -> errors.CopyError:
    """Map a service error to a named error. Service messages are not passed on: they could
    quote metadata values. Whether a refusal is about inconsistent metadata is decided from
    the metadata itself (copy_start.py), not from a message's wording."""
    code = error.response.get("Error", {}).get("Code", "")
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    mapping: dict[str, type[errors.CopyError]] = {
        "ConflictException": errors.CopyConflict,
        "ThrottlingException": errors.CopyThrottled,
        "ServiceQuotaExceededException": errors.CopyQuotaExceeded,
        "ResourceNotFoundException": errors.ImageSetNotFound,
        "AccessDeniedException": errors.CopyAccessDenied,
        "ValidationException": errors.InvalidCopyRequest,
        "InternalServerException": errors.HealthImagingUnavailable,
    }
    return mapping.get(code, errors.HealthImagingUnavailable)(f"{code} (HTTP {status}) on {subject}")


def get_image_set(datastore_id: str, image_set_id: str, version_id: str | None = None) -> dict[str, Any]:
    params = {"datastoreId": datastore_id, "imageSetId": image_set_id}
    if version_id:
        params["versionId"] = version_id
    try:
        return dict(read_client().get_image_set(**params))
    except ClientError as error:
        raise translate(error, f"GetImageSet {image_set_id}") from None
    except (ConnectionError, ReadTimeoutError):
        raise errors.HealthImagingUnavailable(f"GetImageSet {image_set_id}: no answer") from None


def get_metadata(
    datastore_id: str,
    image_set_id: str,
    version_id: str | None = None,
    *,
    instances: bool,
    digests: AbstractSet[str] | None = None,
) -> metadata.MetadataSummary:
    """The image set's DICOM metadata document (gzip JSON on the wire, up to 50 MB unzipped), read as
    a stream into its summary; `instances`, `digests`: see metadata.summarise."""
    params = {"datastoreId": datastore_id, "imageSetId": image_set_id}
    if version_id:
        params["versionId"] = version_id
    subject = f"GetImageSetMetadata {image_set_id}"
    try:
        response = read_client().get_image_set_metadata(**params)
        with closing(response["imageSetMetadataBlob"]) as body:
            gzipped = response.get("contentEncoding") == "gzip"
            return metadata.summarise(body, gzipped=gzipped, instances=instances, digests=digests)
    except ClientError as error:
        raise translate(error, subject) from None
    except (ConnectionError, HTTPClientError, IncompleteReadError):
        # Before the answer or mid-body (a read timeout, a connection reset, a body shorter than its length).
        raise errors.HealthImagingUnavailable(f"{subject}: no answer") from None
    except metadata.UnreadableDocument as unreadable:
        raise errors.HealthImagingUnavailable(f"{subject}: {unreadable}") from None


def search(datastore_id: str, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every image set summary matching the filters (the API takes at most two), all pages."""
    found: list[dict[str, Any]] = []
    token: str | None = None
    try:
        while True:
            params: dict[str, Any] = {"datastoreId": datastore_id, "searchCriteria": {"filters": filters}}
            if token:
                params["nextToken"] = token
            page = read_client().search_image_sets(**params)
            found.extend(page.get("imageSetsMetadataSummaries", []))
            token = page.get("nextToken")
            if not token:
                return found
    except ClientError as error:
        raise translate(error, "SearchImageSets") from None
    except (ConnectionError, ReadTimeoutError):
        raise errors.HealthImagingUnavailable("SearchImageSets: no answer") from None


def search_page(
    datastore_id: str, filters: list[dict[str, Any]], *, token: str | None = None, sort_by: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of image set summaries (at most 50, the API's maximum) and the next page's token."""
    criteria: dict[str, Any] = {"filters": filters}
    if sort_by:
        criteria["sort"] = {"sortField": sort_by, "sortOrder": "ASC"}
    params: dict[str, Any] = {"datastoreId": datastore_id, "searchCriteria": criteria, "maxResults": 50}
    if token:
        params["nextToken"] = token
    try:
        page = read_client().search_image_sets(**params)
    except ClientError as error:
        if token and error.response.get("Error", {}).get("Code") == "ValidationException":
            # The filters were accepted with the first page: what is refused is the token (expired, or unknown).
            raise errors.SearchTokenRefused("SearchImageSets refused the nextToken") from None
        raise translate(error, "SearchImageSets") from None
    except (ConnectionError, ReadTimeoutError):
        raise errors.HealthImagingUnavailable("SearchImageSets: no answer") from None
    return list(page.get("imageSetsMetadataSummaries", [])), page.get("nextToken")


def equal(attribute: str, value: object) -> dict[str, Any]:
    return {"operator": "EQUAL", "values": [{attribute: value}]}


def between(attribute: str, low: object, high: object) -> dict[str, Any]:
    return {"operator": "BETWEEN", "values": [{attribute: low}, {attribute: high}]}


def copy_image_set(
    *,
    datastore_id: str,
    source_image_set_id: str,
    source_version_id: str,
    destination_image_set_id: str | None,
    destination_version_id: str | None,
    copiable_attributes: str | None,
    force: bool,
    promote_to_primary: bool,
) -> dict[str, Any]:
    """One CopyImageSet call, never retried here. Raises CopyOutcomeUnknown when the
    service may have accepted it, a named error when it certainly did not."""
    source: dict[str, Any] = {"latestVersionId": source_version_id}
    if copiable_attributes:
        source["DICOMCopies"] = {"copiableAttributes": copiable_attributes}
    information: dict[str, Any] = {"sourceImageSet": source}
    if destination_image_set_id:
        information["destinationImageSet"] = {
            "imageSetId": destination_image_set_id,
            "latestVersionId": destination_version_id,
        }
    try:
        return dict(
            copy_client().copy_image_set(
                datastoreId=datastore_id,
                sourceImageSetId=source_image_set_id,
                copyImageSetInformation=information,
                force=force,
                promoteToPrimary=promote_to_primary,
            )
        )
    except ClientError as error:
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if status >= 500:
            raise errors.CopyOutcomeUnknown(f"CopyImageSet answered HTTP {status}") from None
        raise translate(error, f"CopyImageSet {source_image_set_id}") from None
    except ConnectionError:
        # Could not connect: the request never reached the service.
        raise errors.HealthImagingUnavailable("CopyImageSet: could not connect") from None
    except HTTPClientError as error:
        # The request may have gone out (read timeout, connection closed, ...): whether it was accepted is unknown.
        raise errors.CopyOutcomeUnknown(f"CopyImageSet got no answer: {type(error).__name__}") from None
