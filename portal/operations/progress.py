"""How a long operation tells its progress: `progress(total, label)` gives a context manager
whose `update(n)` counts n more done. `portal.command_line.progress_bar` draws it on a terminal;
`quiet` says nothing."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Protocol


class ProgressBar(Protocol):
    def update(self, n: int, /) -> None: ...


Progress = Callable[[int, str], AbstractContextManager[ProgressBar]]


class _Quiet:
    def __enter__(self) -> _Quiet:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int, /) -> None:
        pass


def quiet(total: int, label: str) -> AbstractContextManager[ProgressBar]:
    """A progress that says nothing (tests, jobs without a terminal)."""
    return _Quiet()
