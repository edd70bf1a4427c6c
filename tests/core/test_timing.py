"""cvas.core.timing: seconds per phase, each phase its own time only."""

from __future__ import annotations

import time

from cvas.core.timing import phase, take


def test_a_nested_phase_is_taken_out_of_the_outer_one_and_take_starts_again():
    take()
    with phase("outer"):
        time.sleep(0.02)
        with phase("inner"):
            time.sleep(0.05)
    spent = take()
    assert 0.05 <= spent["inner"] < 0.2
    assert 0.02 <= spent["outer"] < 0.05            # without the inner phase's 0.05 s
    assert take() == {}


def test_a_phase_decorates_a_function_and_counts_each_call():
    @phase("step")
    def step():
        time.sleep(0.01)

    take()
    step()
    step()
    assert 0.02 <= take()["step"] < 0.1
