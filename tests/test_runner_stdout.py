"""The local runner's stdout: the function's output (EMF metrics) into its logs, nobody else's."""

from __future__ import annotations

import io
import sys
import threading

import pytest

from offline.runner import _InvocationStdout


def test_what_another_thread_prints_during_an_invocation_stays_out_of_the_functions_logs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An operator CLI printed its execution's ARN while the execution's first invocation ran on moto's
    thread: the ARN landed in the function's logs and the test read an empty answer (CI, stop 21)."""
    logs = io.StringIO()
    stdout = _InvocationStdout(logs)
    invoking, answered = threading.Event(), threading.Event()

    def invocation() -> None:
        with stdout.capturing():
            print("metrics")
            invoking.set()
            assert answered.wait(5)
            with stdout.capturing():  # an invocation made from inside one
                print("nested")
            print("more metrics")

    terminal = sys.stdout
    with stdout.installed():
        thread = threading.Thread(target=invocation)
        thread.start()
        assert invoking.wait(5)
        print("arn")
        answered.set()
        thread.join(5)
        print("after")
    assert sys.stdout is terminal
    assert logs.getvalue() == "metrics\nnested\nmore metrics\n"
    assert capsys.readouterr().out == "arn\nafter\n"
