"""The virtual clock the local runner and the benchmarks run on (offline/clock.py): participants, sleeps that
an alarm cuts short, and sleeps without end that never make the clock jump."""

from __future__ import annotations

import math
import threading

from offline.clock import Alarm, VirtualClock


def test_the_clock_jumps_to_the_earliest_sleeper_once_every_participant_sleeps() -> None:
    clock = VirtualClock(start=0.0)
    woke: list[tuple[str, float]] = []

    def sleeper(name: str, seconds: float) -> None:
        clock.sleep(seconds)
        woke.append((name, clock.now()))
        clock.leave()

    threads = [threading.Thread(target=sleeper, args=(name, s)) for name, s in (("late", 30.0), ("early", 10.0))]
    for _ in threads:
        clock.join()  # both running before either sleeps
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert woke == [("early", 10.0), ("late", 30.0)]


def test_an_alarm_cuts_a_sleep_short_and_the_clock_does_not_jump_past_it() -> None:
    clock = VirtualClock(start=0.0)
    alarm = Alarm()
    ended: list[tuple[bool, float]] = []

    def waiter() -> None:
        ended.append((clock.sleep(60.0, alarm), clock.now()))
        clock.leave()

    clock.join()
    clock.join()  # this test is a participant too: the clock cannot jump while it runs
    thread = threading.Thread(target=waiter)
    thread.start()
    clock.sleep(5.0)  # both asleep: the clock jumps to 5 s, not 60 s
    clock.ring(alarm)
    clock.leave()
    thread.join(timeout=10)
    assert ended == [(True, 5.0)]


def test_a_rung_alarm_ends_the_next_sleep_at_once_and_a_timed_out_one_says_so() -> None:
    clock = VirtualClock(start=0.0)
    rung = Alarm()
    clock.ring(rung)  # rung before anyone sleeps on it (a task token sent back before its wait began)
    clock.join()
    assert clock.sleep(30.0, rung) is True and clock.now() == 0.0
    assert clock.sleep(30.0, Alarm()) is False and clock.now() == 30.0
    clock.leave()


def test_a_sleep_without_end_waits_for_its_alarm_and_never_makes_the_clock_jump() -> None:
    clock = VirtualClock(start=0.0)
    alarm = Alarm()
    done = threading.Event()

    def idle() -> None:
        clock.sleep(math.inf, alarm)
        done.set()
        clock.leave()

    clock.join()
    thread = threading.Thread(target=idle)
    thread.start()
    clock.join()
    clock.sleep(10.0)  # the idle sleeper does not hold the clock back, nor pull it to infinity
    assert clock.now() == 10.0 and not done.is_set()
    clock.ring(alarm)
    clock.leave()
    thread.join(timeout=10)
    assert done.is_set() and clock.now() == 10.0
