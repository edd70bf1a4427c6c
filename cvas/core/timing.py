"""Where a run's time goes: seconds per phase, accumulated in each process and taken per task run."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

_spent: dict[str, float] = {}
_local = threading.local()


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    """Count the time spent inside under `name`: its own time only (a phase nested inside another
    is taken out of the outer one), so the phases of a run add up to the time they cover. Costs a
    clock read on entry and exit; per thread, so workers' threads never mix their phases."""
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    start = time.perf_counter()
    stack.append(0.0)                      # time spent in phases nested inside this one
    try:
        yield
    finally:
        elapsed = time.perf_counter() - start
        nested = stack.pop()
        _spent[name] = _spent.get(name, 0.0) + elapsed - nested
        if stack:
            stack[-1] += elapsed


def take() -> dict[str, float]:
    """The seconds per phase counted in this process since the last `take`, and start again."""
    spent = dict(_spent)
    _spent.clear()
    return spent
