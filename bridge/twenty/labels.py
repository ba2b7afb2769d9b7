"""Which field labels to shorten (pure; provision.py applies them).

A label the bridge gave a field earlier (`formerLabels` in schema/, or the label an inverse
relation field was created with) is the bridge's, and becomes the declared one. Any other
label is a person's and stays. Only labels and descriptions change: names stay, so no record,
view or query changes with them.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.twenty.metadata import LiveObject
from bridge.twenty.schema import DataModel


@dataclass(frozen=True)
class Relabel:
    obj: str
    field: str
    old: str  # the label now ("" when the field is still to be created)
    new: str
    description: str | None


def relabels(model: DataModel, live: dict[str, LiveObject], *, planned: bool) -> list[Relabel]:
    """The labels to change. `planned`: also the inverse relation fields this run creates
    (Twenty names a field after the label it is created with, so those are created with their
    name's label and shortened after)."""
    out: list[Relabel] = []
    for obj in model.objects:
        for spec in obj.fields:
            current = live[obj.nameSingular].fields.get(spec.name) if obj.nameSingular in live else None
            if current is not None and current.label != spec.label and current.label in spec.formerLabels:
                out.append(Relabel(obj.nameSingular, spec.name, current.label, spec.label, spec.description))
            rel = spec.relation
            if rel is None:
                continue
            former = {*rel.targetFieldFormerLabels, rel.creation_label} - {rel.targetFieldLabel}
            target = live.get(rel.target)
            inverse = target.fields.get(rel.target_field_name) if target else None
            if inverse is not None and inverse.label in former:
                out.append(Relabel(rel.target, rel.target_field_name, inverse.label, rel.targetFieldLabel, None))
            elif inverse is None and planned and rel.creation_label != rel.targetFieldLabel:
                out.append(Relabel(rel.target, rel.target_field_name, "", rel.targetFieldLabel, None))
    return out


def describe(changes: list[Relabel]) -> str:
    return "; ".join(f"{c.field}: {c.old!r} → {c.new!r}" if c.old else f"{c.field}: {c.new!r}" for c in changes)
