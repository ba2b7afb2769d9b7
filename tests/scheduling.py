"""The order tests are handed out in, for pytest-xdist's work stealing (`--dist worksteal`).

Work stealing gives each of the n processes a contiguous share of the collection at the start
(the first len/n, then a (n-1)-th of the rest, and so on) and lets a process that ran out take
the back half of the longest queue left. Slow tests left together would all land in one share
and end the run alone (seen: one process ran every whole-process test, 110 s after the other two
were done), so each share starts with its turn of them, the quick tests after, to be stolen.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import islice
from typing import TypeVar

T = TypeVar("T")


def shares(total: int, workers: int) -> list[int]:
    """How many consecutive tests each process is given first, as work stealing splits them."""
    sizes = []
    for i in range(workers):
        size = total // (workers - i)
        sizes.append(size)
        total -= size
    return sizes


def deal(items: Sequence[T], workers: int, slow: Callable[[T], bool]) -> list[T]:
    """`items` reordered so that each process's first share starts with its turn of the slow
    ones (dealt in collection order), the quick ones after them; one process: the slow first."""
    slow_items = [item for item in items if slow(item)]
    quick = iter([item for item in items if not slow(item)])
    if workers <= 1:
        return [*slow_items, *quick]
    ordered: list[T] = []
    for n, size in enumerate(shares(len(items), workers)):
        mine = slow_items[n::workers]
        ordered += mine
        ordered += islice(quick, max(0, size - len(mine)))
    ordered += quick  # what is left when some share held more slow tests than its size
    return ordered
