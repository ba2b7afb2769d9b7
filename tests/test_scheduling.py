"""Slow tests are spread so that each pytest-xdist process starts its share with its turn of them."""

from __future__ import annotations

import pytest

from tests.scheduling import deal, shares


@pytest.mark.parametrize(
    ("total", "workers", "expected"), [(10, 3, [3, 3, 4]), (9, 3, [3, 3, 3]), (1784, 3, [594, 595, 595]), (5, 1, [5])]
)
def test_shares_are_the_contiguous_runs_work_stealing_hands_out_first(
    total: int, workers: int, expected: list[int]
) -> None:
    assert shares(total, workers) == expected and sum(expected) == total


def test_each_share_starts_with_its_turn_of_the_slow_tests() -> None:
    items = [f"q{n}" for n in range(10)] + ["s0", "s1", "s2", "s3"]
    ordered = deal(items, 3, lambda item: item.startswith("s"))
    assert sorted(ordered) == sorted(items)
    first, second, third = ordered[0:4], ordered[4:9], ordered[9:14]  # shares(14, 3) == [4, 5, 5]
    assert first[:2] == ["s0", "s3"] and second[:1] == ["s1"] and third[:1] == ["s2"]
    assert [i for i in ordered if i.startswith("q")] == [f"q{n}" for n in range(10)], "quick ones keep their order"


def test_one_process_runs_the_slow_tests_first() -> None:
    assert deal(["q0", "s0", "q1", "s1"], 1, lambda item: item.startswith("s")) == ["s0", "s1", "q0", "q1"]


@pytest.mark.parametrize(
    "items", [["s0", "s1", "s2", "s3", "s4", "q0"], ["s0", "s1", "s2"], ["s0", "s1", "s2", "q0", "q1"], ["q0"], []]
)
def test_any_mix_of_slow_and_quick_tests_loses_none_and_repeats_none(items: list[str]) -> None:
    """Whatever was selected (`-k`, one file, only slow tests): each test once."""
    for workers in (1, 2, 3, 4):
        ordered = deal(items, workers, lambda item: item.startswith("s"))
        assert sorted(ordered) == sorted(items), workers
