"""Every HealthImaging operation the pipeline calls has a budget (a setting: the account's quota less a margin), and
the copies the dispatcher plans are the tightest any of them allows: budget / calls per copy, per operation, by
copy policy (planned_rate, pure: the dispatcher, the synth warning and benchmarks/scale/ use it alike).

Quotas are per account and Region, one per operation (HealthImaging throttling limits: CopyImageSet 0.25,
GetImageSet 25, GetImageSetMetadata 50, SearchImageSets 25 TPS by default, each adjustable on its own): an account
that raised CopyImageSet to 10 and left GetImageSet at 25 copies into primaries at 8 a second, not 10, and the
pipeline says so (the synth warning, the PlannedCopyRate metric and the CopyRateAllowedBy... ones) rather than
throttle its own reads. Nothing calls ListImageSetVersions: it has no budget.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from copier.settings import PAGING_SEARCHES_PER_SECOND, CopyPolicy, Settings

# A budget is the operation's applied quota less this margin, as copyRatePerSecond is 0.24 of 0.25
# (docs/configuration.md, "Read budgets"): the synth warning's figures to set and the scale model's budgets.
BUDGET_MARGIN = 0.96


class Operation(StrEnum):
    COPY_IMAGE_SET = "CopyImageSet"
    GET_IMAGE_SET = "GetImageSet"
    GET_IMAGE_SET_METADATA = "GetImageSetMetadata"
    SEARCH_IMAGE_SETS = "SearchImageSets"


# Each operation's calls for one copy that goes as planned (an event's, started by the dispatcher), by the steps that
# make them; tests/test_budgets.py counts them in the emulator's call log, one copy per policy.
# - snapshot: StartCopy reads nothing (the backlog admitted the source version; a new image set has no baseline:
#   copy_start._unread), CopyImageSet, CheckCopy reads the version it produced once its event wakes it.
# - merge-into-primary: FindPrimaryOfSeries reads the source (GetImageSet: its version, whether it is primary), its
#   series (GetImageSetMetadata) and the primary of the series (SearchImageSets), on the copy's slot; StartCopy reads
#   the destination (its state and latest version, the copy's baseline; the source's version was read on this slot:
#   copy_start._source_known); CheckCopy as above.
CALLS_PER_COPY: Mapping[CopyPolicy, Mapping[Operation, int]] = MappingProxyType(
    {
        CopyPolicy.SNAPSHOT: MappingProxyType({Operation.COPY_IMAGE_SET: 1, Operation.GET_IMAGE_SET: 1}),
        CopyPolicy.MERGE_INTO_PRIMARY: MappingProxyType(
            {
                Operation.COPY_IMAGE_SET: 1,
                Operation.GET_IMAGE_SET: 3,
                Operation.GET_IMAGE_SET_METADATA: 1,
                Operation.SEARCH_IMAGE_SETS: 1,
            }
        ),
        # Copies started by hand only, each its own (a console copy into an image set reads more: few of them).
        CopyPolicy.OFF: MappingProxyType({Operation.COPY_IMAGE_SET: 1, Operation.GET_IMAGE_SET: 1}),
    }
)


@dataclass(frozen=True)
class PlannedRate:
    rate: float  # copies a second: the tightest of `allowed`
    binding: Operation  # the operation whose budget allows the fewest (CopyImageSet on a tie)
    allowed: Mapping[Operation, float]  # copies a second each operation's budget allows

    @property
    def read_bound(self) -> bool:
        return self.binding is not Operation.COPY_IMAGE_SET


def budgets_of(settings: Settings) -> dict[Operation, float]:
    """Each operation's budget (calls a second) in the settings; SearchImageSets' less the paging's share."""
    return {
        Operation.COPY_IMAGE_SET: settings.copy_rate_per_second,
        Operation.GET_IMAGE_SET: settings.get_image_set_rate_per_second,
        Operation.GET_IMAGE_SET_METADATA: settings.get_image_set_metadata_rate_per_second,
        Operation.SEARCH_IMAGE_SETS: settings.search_image_sets_rate_per_second - PAGING_SEARCHES_PER_SECOND,
    }


def planned_rate(policy: CopyPolicy, budgets: Mapping[Operation, float]) -> PlannedRate:
    """The copies a second the budgets allow under a copy policy: the tightest of budget / calls per copy."""
    allowed = {operation: budgets[operation] / calls for operation, calls in CALLS_PER_COPY[policy].items() if calls}
    binding = min(allowed, key=lambda operation: (allowed[operation], operation is not Operation.COPY_IMAGE_SET))
    return PlannedRate(rate=allowed[binding], binding=binding, allowed=MappingProxyType(allowed))


def planned_rate_of(settings: Settings) -> PlannedRate:
    return planned_rate(settings.copy_policy, budgets_of(settings))
