"""Errors the copy function raises.

The class name is the error name Step Functions matches in Retry and Catch, so these
names are a public contract (docs/errors.md). Messages carry ids, versions, statuses
and DICOM element names only: never metadata values.
"""

from __future__ import annotations


class CopyError(Exception):
    """Base class; never raised itself."""


class FunctionMisconfigured(CopyError):
    """An environment setting of the function is invalid (a deployment fault)."""


class InvalidCopyRequest(CopyError):
    """The input (console, event or step payload) is malformed; nothing was called."""


class ImageSetNotFound(CopyError):
    """Source or destination does not exist, or was deleted."""


class ImageSetVersionChanged(CopyError):
    """A version named by the request (or its event) is no longer the latest."""


class PrimaryImageSetNotFound(CopyError):
    """merge-into-primary: the source's series has no primary image set to merge into."""


class SeveralPrimaryImageSets(CopyError):
    """merge-into-primary: more than one primary image set claims the source's series."""


class CopyAccessDenied(CopyError):
    """The function's role may not call HealthImaging on this data store."""


class CopyConflict(CopyError):
    """Source or destination locked by another copy, or its version moved."""


class CopyThrottled(CopyError):
    """ThrottlingException: the CopyImageSet rate quota was exceeded."""


class CopyQuotaExceeded(CopyError):
    """ServiceQuotaExceededException, e.g. too many concurrent copies in the data store."""


class HealthImagingUnavailable(CopyError):
    """InternalServerException or a network failure on a call that is safe to repeat."""


class SearchTokenRefused(CopyError):
    """SearchImageSets refused a saved nextToken (ValidationException): a backfill resumed after days. The
    backfill searches again from the last position it saved (backfill.py)."""


class TableUnavailable(HealthImagingUnavailable):
    """DynamoDB did not answer; nothing was sent to HealthImaging. `item`: the item a refused conditional
    write found, when it asked for it (ReturnValuesOnConditionCheckFailure)."""

    def __init__(self, message: str, code: str = "", item: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.item = item


class CopyRecordChanged(CopyError):
    """The copy record changed between a read and a conditional write (another step of the same
    request, or a claim by another record): read it again."""


class CopyOutcomeUnknown(CopyError):
    """CopyImageSet may or may not have been accepted (5xx, timeout, crash): confirm, never repeat blindly."""


class CopyOutcomeUndecided(CopyError):
    """The evidence cannot tell whether an unconfirmed CopyImageSet was accepted: an operator must look."""


class InconsistentMetadata(CopyError):
    """Patient/Study/Series elements differ between source and destination; needs force."""


class ForceRefused(CopyError):
    """The stack's force policy does not allow forcing this copy."""


class CopyFailed(CopyError):
    """The copy's own version ended COPY_FAILED for a reason force cannot fix."""


class CopyWaitTimedOut(CopyError):
    """The copy did not finish within the configured maximum wait."""
