"""CopyImageSet's quotas: the account's token bucket (0.25 TPS, burst 1 by default) answering
ThrottlingException, and the concurrent copies per data store (100 by default) answering
ServiceQuotaExceededException. Another writer's copy counts against the concurrency quota but takes no token (the
bucket stands for the pipeline's own rate), unless it is another client of the account's quota (`takes_quota`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from offline.emulator.errors import ServiceError
from offline.emulator.timeline import Timeline

if TYPE_CHECKING:
    from offline.emulator.copies import AcceptedCopy


class CopyQuotas(Timeline):
    """The CopyImageSet token bucket and the copies under way."""

    copy_rate_per_second: float
    copy_burst: float
    max_concurrent_copies: int
    pending: list[AcceptedCopy]  # copies under way, for the concurrency quota
    _tokens: float
    _tokens_at: float

    def _take_copy_token(self, at: float | None = None) -> None:
        now = self.clock() if at is None else at  # another client's call is issued at its own instant
        self._tokens = min(self.copy_burst, self._tokens + max(now - self._tokens_at, 0) * self.copy_rate_per_second)
        self._tokens_at = max(now, self._tokens_at)
        if self._tokens < 1.0 - 1e-9:
            raise ServiceError("ThrottlingException", "CopyImageSet rate exceeded")
        self._tokens -= 1.0

    def _check_concurrent_copies(self, datastore_id: str) -> None:
        if sum(1 for p in self.pending if p.datastore_id == datastore_id) >= self.max_concurrent_copies:
            raise ServiceError("ServiceQuotaExceededException", "too many concurrent copies in this data store")
