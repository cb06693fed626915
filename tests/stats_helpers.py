"""The statistical tests' 2-of-3 vote (SECURITY-TESTS.md: alpha 1e-4, a 2-of-3 vote to stay
quiet in CI), evaluated lazily: trials run in order and stop once the vote is decided, so a
clear result costs two trials instead of three and the verdict is the same."""

from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


def vote(passes: Callable[[T], bool], trials: Iterable[T], need: int = 2) -> bool:
    """True if at least `need` of `trials` pass `passes`; stops as soon as that is settled
    either way (`need` passes seen, or too few trials left to reach it)."""
    trials = list(trials)
    ok = 0
    for i, t in enumerate(trials):
        ok += bool(passes(t))
        if ok >= need:
            return True
        if ok + (len(trials) - i - 1) < need:
            return False
    return False
