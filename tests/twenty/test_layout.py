"""Where the bridge's new columns go in a list view, and which of its columns Twenty filed out of sight."""

from __future__ import annotations

import pytest

from bridge.twenty.layout import Wanted, filed_late, placed
from bridge.twenty.metadata import LiveView, LiveViewField

# (field id, position, visible, untouched since Twenty made it)
Column = tuple[str, float, bool, bool]


def view(*columns: Column) -> LiveView:
    fields = tuple(
        LiveViewField(id=f"vf-{field_id}", field_id=field_id, visible=visible, position=position, untouched=untouched)
        for field_id, position, visible, untouched in columns
    )
    return LiveView(id="v", name="All", type="TABLE", key="INDEX", group_field_id=None, fields=fields)


@pytest.mark.parametrize(
    ("next_position", "expected"),
    [
        (5.0, [1.0, 2.0]),  # room between the name and the next column
        (3.0, [1.0, 2.0]),
        (2.0, [-2.0, -1.0]),  # no room: before every column (Twenty shows the name first anyway)
        (1.0, [-2.0, -1.0]),
    ],
)
def test_whole_positions_go_right_after_the_name_when_they_fit_else_before_every_column(
    next_position: float, expected: list[float]
) -> None:
    columns = view(("name", 0.0, True, False), ("other", next_position, True, False))
    assert placed(columns, 2, None, whole=True) == expected


NAME: Column = ("name", 0.0, True, False)


@pytest.mark.parametrize(
    ("columns", "late"),
    [
        ([NAME, ("person", 1.0, True, False), ("ours", 2.0, True, True)], ["ours"]),
        ([NAME, ("person", 1.0, True, False), ("ours", 2.0, True, False)], []),  # a person arranged it
        ([NAME, ("person", 1.0, False, False), ("ours", 2.0, True, True)], []),  # only a hidden column between
        ([NAME, ("mine", 1.0, True, True), ("ours", 2.0, True, True)], []),  # only the bridge's own between
        ([("ours", 0.0, True, True), NAME], []),  # the anchor is the first column shown
    ],
)
def test_a_column_is_filed_late_only_when_twenty_put_a_column_not_the_bridges_before_it(
    columns: list[Column], late: list[str]
) -> None:
    wanted = [Wanted("ours", "ours"), Wanted("mine", "mine")]
    assert [name for _, name in filed_late(view(*columns), wanted, None)] == late
