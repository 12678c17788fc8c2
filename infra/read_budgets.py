"""The synth warning when a HealthImaging read's budget, not copyRatePerSecond, sets how fast copies go: the quota to
raise and the copy rate the budgets allow meanwhile, as the dispatcher plans it (copier.budgets)."""

from __future__ import annotations

from copier.budgets import BUDGET_MARGIN, CALLS_PER_COPY, Operation, budgets_of, planned_rate_of
from copier.settings import PAGING_SEARCHES_PER_SECOND, Settings

from .settings import StackSettings

WARNING_ID = "healthimaging-copy:read-bound"
# The setting that holds each operation's budget (docs/configuration.md).
BUDGET_SETTINGS = {
    Operation.COPY_IMAGE_SET: "copyRatePerSecond",
    Operation.GET_IMAGE_SET: "getImageSetRatePerSecond",
    Operation.GET_IMAGE_SET_METADATA: "getImageSetMetadataRatePerSecond",
    Operation.SEARCH_IMAGE_SETS: "searchImageSetsRatePerSecond",
}


def read_bound_warning(settings: StackSettings) -> str | None:
    """When a read's budget allows fewer copies a second than copyRatePerSecond under the copy policy: the quota to
    raise (and its setting), and the copy rate it allows meanwhile (copier.budgets, as the dispatcher plans)."""
    function_settings = Settings.model_validate({**settings.function_environment(), "IDEMPOTENCY_TABLE": "-"})
    planned = planned_rate_of(function_settings)
    if not planned.read_bound:
        return None
    calls = CALLS_PER_COPY[function_settings.copy_policy]
    paging = PAGING_SEARCHES_PER_SECOND if planned.binding is Operation.SEARCH_IMAGE_SETS else 0.0
    needed = settings.copy_rate_per_second * calls[planned.binding] + paging
    return (
        f"copyPolicy {settings.copy_policy} calls {planned.binding} {calls[planned.binding]}x a copy:"
        f" {BUDGET_SETTINGS[planned.binding]} {budgets_of(function_settings)[planned.binding] + paging:g} allows"
        f" {planned.rate:.3g} copies a second, under copyRatePerSecond {settings.copy_rate_per_second:g}: the"
        f" dispatcher plans {planned.rate:.3g}. To copy at {settings.copy_rate_per_second:g}, ask for the account's"
        f" {planned.binding} quota to be raised to {needed / BUDGET_MARGIN:.3g} TPS and set"
        f" {BUDGET_SETTINGS[planned.binding]} to {needed:.3g} (docs/configuration.md, Read budgets)."
    )
