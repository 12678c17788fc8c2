"""The pipeline at any CopyImageSet quota, against the AWS limits that bind it: a discrete-event model.

Virtual time, one heapq event queue per run, no threads, no moto: a run is one process's loop, and the
runs share the machine's two cores. The model drives the project's own decision code: the dispatcher's
plan (`copier.dispatcher.planning.plan_run`, `after_run`, with `copier.admission.plan_starts` and its permits of the
concurrent-copy quota), the pacing (`copier.pacing.next_slot`, `wait_until`, `hold_seconds`, and the adaptive
pace, `pacing.adapted`), the copy's fallback waits (`copier.copy_status.fallback_wait`) and the dispatcher's
constants (horizon, StartExecution rate). What it replicates is the services: the account's CopyImageSet
token bucket (shared with other clients and other stacks), the data store's concurrent copies,
GetImageSet's quota, Step Functions' StartExecution and StateTransition buckets, Lambda's environments,
HealthImaging's completion events (best effort: a share of them can be dropped), and the pipeline's queues.

Each copy takes the deployed way: EventBridge -> admission queue -> PENDING journal entry -> a dispatcher run
gives it a slot and a permit and starts its execution with both -> RouteCopy -> WaitForCopySlot (until its
timestamp) -> StartCopy, held to its slot -> CopyImageSet: accepted, or pushed back (throttled, or refused over
the concurrent-copy quota: ReserveCopySlot, a new slot after the dispatcher's, the pace slowed at the next run)
-> AwaitCopy (its token on the wake item) -> the completion event wakes it, or its fallback wait runs out ->
CheckCopy (GetImageSet on its version) -> COPIED. Printed per scenario: drain time against the physical limit
(N / min(TPS quota, concurrent copies / a copy's duration)), executions failed or timed out, copies lost,
duplicates, pushed-back calls per copy, state transitions, Lambda invocations and AWS calls per copy, how
long from a copy's end to COPIED, and where each limit binds: peak Lambda environments (and the
reservedConcurrency that leaves room: 1.25 x the peak), StartExecution, StateTransition, GetImageSet and
SendTaskSuccess a second against their quotas, writes a second on the pacing item and on the PENDING
index's one partition.

    python -m benchmarks.scale --quota 10 [--rate R] [--burst B] [--concurrent-copies C] [--copy-seconds D]
                               [--get-image-set-quota G] [--drop-events 0.0] [--seed 1]
    python -m benchmarks.scale --quick    # make bench: 10k in 60 s at 0.25, 1 and 10 TPS (about a minute)
    python -m benchmarks.scale --table    # docs/figures.md's table: 4 quotas x 4 bursts and a 1M backfill (~25 min)
    python -m benchmarks.scale --shared   # issue 16's shared-quota scenarios (another client, two stacks)

Every assumed figure and its source is printed with the results (`Limits.assumptions`).

The modules, by concern (a change lands in the one that holds its concern):
- `limits.py`: every figure the model assumes (`Limits`: quotas, rates, latencies, the stack's settings) and
  its source; a new quota's figure goes here.
- `services.py`: the services' mechanisms: token buckets that refuse or delay, per-second peaks, a function's
  Lambda environments, the account (the virtual clock's event loop and the quotas its stacks share), another
  client of the CopyImageSet quota; a new quota's bucket goes on `Account`.
- `stack.py`: one deployed pipeline's way for each copy (admission, the copy journal's backlog, the dispatcher,
  each execution's states, the completion events).
- `outcome.py`: what one stack's run measured (`Outcome`): the printed figures and the invariants tests read.
- `scenarios.py`: arrivals, the scenarios (bursts, quotas, the shared-quota ones) and running them.
- `report.py`: the print-out's tables.
- `__main__.py`: the command line above.
"""

import sys
from pathlib import Path

# The function's own code, as Lambda loads it (`import copier`), for every module of the model.
LAMBDA_SOURCE = Path(__file__).resolve().parent.parent.parent / "lambda"
if str(LAMBDA_SOURCE) not in sys.path:
    sys.path.insert(0, str(LAMBDA_SOURCE))
