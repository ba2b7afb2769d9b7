"""What a workspace's views lack of what `schema/views.toml` asks for (pure; provision.py applies it).

Everything here only adds. A field already in a view, shown or hidden, stays as the workspace
has it; a column or a section is never removed, hidden or reordered. The one exception: a
column Twenty itself added hidden when the field was created (2.21), and nobody changed since,
is shown, as it would have been added. The one move: on a 2.x
record page, Twenty files every new field under the page's last section ("System"); the
bridge's own fields found there (or in no section) move into the bridge's section. A field a
person put in any other section stays there.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.twenty.metadata import LiveFieldGroup, LiveView, LiveViewField, NewViewField


@dataclass(frozen=True)
class Wanted:
    """A field a view should show: its name and, once it exists in Twenty, its id."""

    name: str
    field_id: str | None


def missing_fields(view: LiveView | None, wanted: list[Wanted]) -> list[Wanted]:
    """The wanted fields the view does not have at all (a hidden one counts as had)."""
    have = {f.field_id for f in view.fields} if view else set()
    return [w for w in wanted if w.field_id is None or w.field_id not in have]


def hidden_as_made(view: LiveView | None, wanted: list[Wanted]) -> list[tuple[Wanted, LiveViewField]]:
    """The wanted fields the view holds hidden as Twenty made them (never changed since): Twenty
    2.21 adds each new field to the object's list view, hidden. One a person hid, or moved or
    resized, has changed since, and stays as it is."""
    by_field = {f.field_id: f for f in view.fields} if view else {}
    found = [(w, by_field.get(w.field_id or "")) for w in wanted]
    return [(w, f) for w, f in found if f is not None and not f.visible and f.untouched]


def shown_at_end(view: LiveView, fields: list[tuple[Wanted, LiveViewField]], after: int = 0) -> list[tuple[str, float]]:
    """(view field id, position) to show these after the view's last field (and `after` more)."""
    start = max((f.position for f in view.fields), default=-1.0) + after
    return [(f.id, start + 1 + i) for i, (_, f) in enumerate(fields)]


def appended(view: LiveView, fields: list[Wanted]) -> list[NewViewField]:
    """New view fields after the view's last one, in the order given (ids known only)."""
    start = max((f.position for f in view.fields), default=-1.0)
    known = [w for w in fields if w.field_id]
    return [NewViewField(str(w.field_id), start + 1 + i) for i, w in enumerate(known)]


def placed(view: LiveView, count: int, after_field_id: str | None, *, whole: bool = False) -> list[float]:
    """`count` positions right after the column of `after_field_id` (default: the view's first
    visible column, the record's name) and before the next one: the new columns show on the
    first screen, and no column there moves (their positions stay as they are).

    `whole`: the server stores positions as integers (1.x), so there is no room between two
    columns; the new ones go before all the others, and Twenty shows the record's name first
    whatever its position, so they come right after it."""
    anchor = _anchor(_shown(view), after_field_id)
    if anchor is None:
        return appended_positions(view, count)
    later = [f.position for f in view.fields if f.position > anchor.position]
    if not later:
        return [anchor.position + 1 + i for i in range(count)]
    if whole:
        return _whole_positions(view, anchor.position, min(later), count)
    step = (min(later) - anchor.position) / (count + 1)
    return [anchor.position + step * (i + 1) for i in range(count)]


def _whole_positions(view: LiveView, anchor: float, next_position: float, count: int) -> list[float]:
    """`placed` with integer positions: between the anchor and the next column when they fit
    there, else before every column."""
    if next_position - anchor > count:
        return [anchor + 1 + i for i in range(count)]
    first = min(f.position for f in view.fields) - count
    return [float(int(first) + i) for i in range(count)]


def _shown(view: LiveView) -> list[LiveViewField]:
    """The view's visible columns, left to right."""
    return sorted((f for f in view.fields if f.visible), key=lambda f: f.position)


def _anchor(shown: list[LiveViewField], after_field_id: str | None) -> LiveViewField | None:
    """The column of `after_field_id` among those shown, else the first shown (the record's name)."""
    return next((f for f in shown if f.field_id == after_field_id), None) or (shown[0] if shown else None)


def appended_positions(view: LiveView, count: int) -> list[float]:
    start = max((f.position for f in view.fields), default=-1.0)
    return [start + 1 + i for i in range(count)]


def hidden_by_twenty(view: LiveView | None, wanted: list[Wanted]) -> list[tuple[LiveViewField, str]]:
    """Wanted columns the view has, hidden, exactly as Twenty made them (nobody showed, hid or
    moved them since): Twenty 2.x files a custom object's new fields hidden in its list."""
    by_field = {f.field_id: f for f in view.fields} if view else {}
    found = [(by_field.get(str(w.field_id)), w.name) for w in wanted if w.field_id]
    return [(f, name) for f, name in found if f is not None and not f.visible and f.untouched]


def filed_late(view: LiveView, wanted: list[Wanted], after_field_id: str | None) -> list[tuple[LiveViewField, str]]:
    """Wanted columns the view shows as Twenty made them (nobody showed, hid, moved or resized
    them since) with another column between them and the anchor (`after_field_id`, default the
    first visible column): 1.x shows every new field at the end of its object's list, past the
    first screen. Columns placed by the bridge or arranged by a person are not among them."""
    shown = _shown(view)
    anchor = _anchor(shown, after_field_id)
    if anchor is None:
        return []
    ours = {w.field_id for w in wanted if w.field_id}
    by_field = {f.field_id: f for f in shown}
    late: list[tuple[LiveViewField, str]] = []
    for w in wanted:
        found = by_field.get(w.field_id or "")
        if found is not None and _pushed_back(found, anchor, shown, ours):
            late.append((found, w.name))
    return late


def _pushed_back(found: LiveViewField, anchor: LiveViewField, shown: list[LiveViewField], ours: set[str]) -> bool:
    """Whether a column, as Twenty made it and after the anchor, has a column not the bridge's
    between it and the anchor."""
    if not found.untouched or found.position <= anchor.position:
        return False
    return any(anchor.position < f.position < found.position and f.field_id not in ours for f in shown)


def index_view(views: list[LiveView], *, not_named: frozenset[str] = frozenset()) -> LiveView | None:
    """The object's standard list view ("All …"): Twenty marks it with key INDEX. `not_named`:
    the bridge's own views, never taken for it (1.x gives every view it creates key INDEX, and
    answers a Kanban made through `createCoreView` as a TABLE: observed)."""
    return next((v for v in views if v.key == "INDEX" and v.type == "TABLE" and v.name not in not_named), None)


def missing_columns(view: LiveView, values: list[str]) -> list[tuple[str, float]]:
    """Kanban columns (option values) the view lacks, each with its position after the last."""
    missing = [v for v in values if v not in view.column_values]
    return [(v, view.last_column_position + 1 + i) for i, v in enumerate(missing)]


# Record-page sections (2.x) -------------------------------------------------------------------


@dataclass(frozen=True)
class SectionChange:
    section: LiveFieldGroup | None  # the bridge's section, if the page has it
    move: tuple[tuple[LiveViewField, str], ...]  # (view field, field name) parked by Twenty
    add: tuple[Wanted, ...]  # wanted fields the page's view does not have at all

    @property
    def done(self) -> bool:
        return self.section is not None and not self.move and not self.add


def section_change(view: LiveView, name: str, wanted: list[Wanted]) -> SectionChange:
    section = find_section(view, name)
    # Two provisioners racing may each have made one: a field in either is in the section.
    ours = {g.id for g in view.field_groups if g.name == name}
    others = sorted((g for g in view.field_groups if g.id not in ours), key=lambda g: g.position)
    parking = others[-1].id if others else None  # where Twenty files new fields
    by_field = {f.field_id: f for f in view.fields}
    move: list[tuple[LiveViewField, str]] = []
    add: list[Wanted] = []
    for w in wanted:
        current = by_field.get(w.field_id) if w.field_id else None
        if current is None:
            add.append(w)
        elif current.group_id in ours:
            continue
        elif current.group_id is None or current.group_id == parking:
            move.append((current, w.name))
        # else: a person put it in another section, where it stays
    return SectionChange(section, tuple(move), tuple(add))


def find_section(view: LiveView, name: str) -> LiveFieldGroup | None:
    named = [g for g in view.field_groups if g.name == name]
    return min(named, key=lambda g: g.position) if named else None


def new_section_position(view: LiveView) -> float:
    """Last of all, so that Twenty files the fields created next (the bridge's) into it."""
    return max((g.position for g in view.field_groups), default=-1.0) + 1


def settled_section_position(view: LiveView, section_id: str) -> float | None:
    """Just before the section that was last, so Twenty goes on filing people's new fields
    there and not in the bridge's section; None when the section is alone."""
    others = _others(view, next((g for g in view.field_groups if g.id == section_id), None))
    if not others:
        return None
    last = others[-1].position
    before = others[-2].position if len(others) > 1 else last - 1
    return (before + last) / 2


def section_positions(view: LiveView, section_id: str | None, count: int) -> list[float]:
    """Positions after the last field already in the section."""
    start = max((f.position for f in view.fields if section_id and f.group_id == section_id), default=-1.0)
    return [start + 1 + i for i in range(count)]


def _others(view: LiveView, section: LiveFieldGroup | None) -> list[LiveFieldGroup]:
    return sorted((g for g in view.field_groups if section is None or g.id != section.id), key=lambda g: g.position)
