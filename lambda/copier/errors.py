"""Errors the copy function raises.

The class name is the error name Step Functions matches in Retry and Catch, so these
names are a public contract (README, "Errors"). Messages carry ids, versions, statuses
and DICOM element names only: never metadata values.
"""

from __future__ import annotations


class CopyError(Exception):
    """Base class; never raised itself."""

    retryable: bool = False


class FunctionMisconfigured(CopyError):
    """An environment setting of the function is invalid (a deployment fault)."""


class InvalidCopyRequest(CopyError):
    """The input (console, event or step payload) is malformed; nothing was called."""


class ImageSetNotFound(CopyError):
    """Source or destination does not exist, or was deleted."""


class ImageSetVersionChanged(CopyError):
    """A version named by the request (or its event) is no longer the latest."""


class PrimaryImageSetNotFound(CopyError):
    """merge-into-primary: the study has no other primary image set to merge into."""


class CopyAccessDenied(CopyError):
    """The function's role may not call HealthImaging on this data store."""


class CopyConflict(CopyError):
    """Source or destination locked by another copy, or its version moved."""

    retryable = True


class CopyThrottled(CopyError):
    """ThrottlingException: the CopyImageSet rate quota was exceeded."""

    retryable = True


class CopyQuotaExceeded(CopyError):
    """ServiceQuotaExceededException, e.g. too many concurrent copies in the data store."""

    retryable = True


class HealthImagingUnavailable(CopyError):
    """InternalServerException or a network failure on a call that is safe to repeat."""

    retryable = True


class InconsistentMetadata(CopyError):
    """Patient/Study/Series elements differ between source and destination; needs force."""

    def __init__(self, message: str, elements: list[str] | None = None) -> None:
        super().__init__(message)
        self.elements = elements or []


class ForceRefused(CopyError):
    """The stack's force policy does not allow forcing this copy."""


class CopyFailed(CopyError):
    """The copy ended in COPY_FAILED for a reason force cannot fix."""


class CopyWaitTimedOut(CopyError):
    """The copy did not finish within the configured maximum wait."""
