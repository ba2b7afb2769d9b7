"""One fake Twenty workspace: its metadata (objects, fields, views, menu items) and its records.

Metadata is kept as plain dicts whose keys follow the /metadata SDL, so graphql-core's default
resolver can read them; a few keys that no SDL exposes (relation targets) carry the wiring.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from . import view_records
from .errors import TwentyError, metadata_invalid, not_found
from .layouts import seed_first_dashboard
from .rules import (
    NOT_CREATABLE_TYPES,
    UNIQUE_CAPABLE_TYPES,
    UNIQUE_SUBFIELD,
    composite_subfields,
    is_uuid,
    name_from_label,
    name_problem,
    option_problems,
    unquote_default,
)
from .table import RecordTable, json_copy, path_value
from .views import file_new_fields, list_new_fields, recompute_columns, seed_standard_views

Record = dict[str, Any]
Meta = dict[str, Any]


def now_iso() -> str:
    """Timestamps as Twenty's API prints them: millisecond ISO-8601 in UTC with a Z."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def later_than(stamp: str) -> str:
    """Now, or a millisecond after `stamp` if now prints the same: a change a person makes
    always shows in `updatedAt` (the bridge tells Twenty's untouched defaults by it)."""
    now = now_iso()
    if now > stamp:
        return now
    moment = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC) + timedelta(milliseconds=1)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class UniqueKey:
    """One upsert match key / unique constraint of an object."""

    field: Meta
    path: tuple[str, ...]  # ("id",), ("whopUserId",), ("emails", "primaryEmail")
    enforced: bool  # backed by a unique index (a duplicate insert fails)
    custom: bool  # a custom field (1.x ranks these above the standard ones when matching)

    @property
    def label(self) -> str:
        return str(self.field["label"])

    def value(self, record: Record) -> Any:
        """The key's value in `record`, or None when missing or empty (such keys are skipped)."""
        return path_value(record, self.path)


class Workspace:
    def __init__(self, dialect: str, release: str | None = None) -> None:
        self.dialect = dialect
        self.release = release  # a 2.x release whose metadata SDL the fake speaks (None: 2.43)
        self.own_entries = 0  # Twenty's own "<object>.created" timeline entries written (note_created)
        # Records one create-many/upsert may carry: 200 on 2.x (observed 2.3), none on 1.x
        # (observed #18); a test may lower it, as a Cloud plan might.
        self.max_upsert: int | None = 200 if dialect == "2.x" else None
        self.id = new_id()
        self.application_id = new_id()
        self.objects: list[Meta] = []
        self._objects_by_id: dict[str, Meta] = {}
        self._fields_by_id: dict[str, Meta] = {}
        self.store: dict[str, RecordTable] = {}  # object id -> record id -> record
        self.views: list[Meta] = []
        self.view_groups: list[Meta] = []
        self.view_fields: list[Meta] = []
        self.view_field_groups: list[Meta] = []  # 2.x record-page sections
        self.page_layouts: list[Meta] = []  # 2.x record pages and dashboards (tabs and widgets nested)
        self.view_sorts: list[Meta] = []
        self.view_filters: list[Meta] = []
        self.nav_items: list[Meta] = []
        # Unique indexes over several columns, by object id: (columns, the refusal's message).
        self.unique_together: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        self._positions: dict[str, int] = {}
        _seed_standard_objects(self)

    # -- look-ups ---------------------------------------------------------------------------

    def object(self, name_or_id: str) -> Meta | None:
        """An object by nameSingular, namePlural or id."""
        if name_or_id in self._objects_by_id:
            return self._objects_by_id[name_or_id]
        for obj in self.objects:
            if name_or_id in (obj["nameSingular"], obj["namePlural"]):
                return obj
        return None

    def require_object(self, object_id: str) -> Meta:
        obj = self._objects_by_id.get(object_id)
        if obj is None:
            raise not_found(f"Object metadata with id {object_id} not found")
        return obj

    def field_by_id(self, field_id: str) -> Meta | None:
        return self._fields_by_id.get(field_id)

    def require_field(self, field_id: str) -> Meta:
        field = self._fields_by_id.get(field_id)
        if field is None:
            raise not_found(f"Field metadata with id {field_id} not found")
        return field

    @staticmethod
    def field(obj: Meta, name: str) -> Meta | None:
        fields: list[Meta] = obj["fieldsList"]
        return next((f for f in fields if f["name"] == name), None)

    @staticmethod
    def active_fields(obj: Meta) -> list[Meta]:
        return [f for f in obj["fieldsList"] if f["isActive"]]

    def records_of(self, obj: Meta) -> RecordTable:
        return self.store.setdefault(obj["id"], RecordTable())

    @staticmethod
    def join_column(field: Meta) -> str | None:
        settings = field.get("settings") or {}
        if field["type"] == "RELATION" and settings.get("relationType") == "MANY_TO_ONE":
            return str(settings.get("joinColumnName") or f"{field['name']}Id")
        return None

    def note_created(self, obj: Meta, records: list[Record]) -> None:
        """Twenty's own "<object>.created" timeline entry for each record an API created (its
        worker writes one on both 1.x and 2.21, observed 2026-12-07), on the record's timeline."""
        timeline = self.object("timelineActivity")
        if timeline is None or obj is timeline or not records:
            return
        column = next(
            (
                self.join_column(f)
                for f in timeline["fieldsList"]
                if (t := self.relation_target(f)) is not None and t[0] is obj and self.join_column(f)
            ),
            None,
        )
        if column is None:
            return
        rows = self.records_of(timeline)
        self.own_entries += len(records)
        name = f"{obj['nameSingular']}.created"
        for record in records:
            entry = self.blank_record(timeline)
            entry.update(
                id=new_id(),
                name=name,
                happensAt=record.get("createdAt"),
                createdAt=record.get("createdAt"),
                updatedAt=record.get("createdAt"),
                deletedAt=None,
                properties={"after": {"id": record["id"]}},
                linkedRecordId=None,
                linkedRecordCachedName="",
                linkedObjectMetadataId=None,
                workspaceMemberId=None,
                position=self.next_position(timeline),
            )
            entry[column] = record["id"]
            rows[entry["id"]] = entry

    def relation_target(self, field: Meta) -> tuple[Meta, Meta] | None:
        """(target object, inverse field) of a RELATION field."""
        target_obj = self._objects_by_id.get(field.get("relationTargetObjectMetadataId") or "")
        target_field = self._fields_by_id.get(field.get("relationTargetFieldMetadataId") or "")
        if target_obj is None or target_field is None:
            return None
        return target_obj, target_field

    def unique_keys(self, obj: Meta) -> list[UniqueKey]:
        """`id` first, then custom unique fields, then standard ones (1.x's matching priority).

        On 1.x the standard unique composites (Person emails, Company domainName) are match keys
        but not enforced: observed #7, two People could end up sharing an email.
        """
        id_field = self.field(obj, "id")
        assert id_field is not None
        keys = [UniqueKey(id_field, ("id",), enforced=True, custom=False)]
        custom: list[UniqueKey] = []
        standard: list[UniqueKey] = []
        for field in self.active_fields(obj):
            if not field.get("isUnique") or field["name"] == "id":
                continue
            sub = UNIQUE_SUBFIELD.get(field["type"])
            path = (field["name"], sub) if sub else (field["name"],)
            if field["isCustom"]:
                custom.append(UniqueKey(field, path, enforced=True, custom=True))
            else:
                standard.append(UniqueKey(field, path, enforced=self.dialect == "2.x", custom=False))
        return keys + custom + standard

    def next_position(self, obj: Meta) -> int:
        self._positions[obj["id"]] = self._positions.get(obj["id"], 0) + 1
        return self._positions[obj["id"]]

    # -- default values ---------------------------------------------------------------------

    def field_default(self, field: Meta) -> Any:
        """What a record reads for `field` when nothing was written to it.

        TEXT reads "" rather than null (observed #10 on 1.x; done on both dialects).
        """
        ftype = field["type"]
        default = field.get("defaultValue")
        sub = composite_subfields(self.dialect, ftype)
        if sub is not None:
            value = json_copy(sub)
            if isinstance(default, dict):
                for key, item in default.items():
                    if key in value and item is not None and key != "context":
                        value[key] = unquote_default(item)
            return value
        if ftype == "TEXT" or (ftype == "RICH_TEXT" and self.dialect == "1.x"):
            inner = unquote_default(default)
            return inner if isinstance(inner, str) else ""
        if ftype in ("SELECT", "RATING"):
            return unquote_default(default) if default is not None else None
        if ftype == "MULTI_SELECT":
            if isinstance(default, list):
                return [unquote_default(v) for v in default]
            return None
        if ftype in ("BOOLEAN", "NUMBER", "NUMERIC"):
            return unquote_default(default) if not isinstance(default, dict) else None
        return None

    def blank_record(self, obj: Meta) -> Record:
        record: Record = {}
        for field in obj["fieldsList"]:
            if field["type"] == "RELATION":
                column = self.join_column(field)
                if column:
                    record[column] = None
                continue
            record[field["name"]] = self.field_default(field)
        return record

    # -- low-level builders (no validation; used by seeding and by the validated API) -------

    def _new_object(
        self,
        name_singular: str,
        name_plural: str,
        label_singular: str,
        label_plural: str,
        *,
        icon: str,
        description: str | None = None,
        custom: bool = False,
        system: bool = False,
        name_field: str | None = "TEXT",
        is_label_synced: bool = False,
    ) -> Meta:
        stamp = now_iso()
        obj: Meta = {
            "id": new_id(),
            "universalIdentifier": new_id(),
            "applicationId": self.application_id,
            "nameSingular": name_singular,
            "namePlural": name_plural,
            "labelSingular": label_singular,
            "labelPlural": label_plural,
            "description": description,
            "icon": icon,
            "shortcut": None,
            "color": None,
            "standardOverrides": None,
            "isCustom": custom,
            "isRemote": False,
            "isActive": True,
            "isSystem": system,
            "isSearchable": not system,
            "isUIEditable": True,
            "isUICreatable": True,
            "isUIReadOnly": False,
            "openRecordIn": "SIDE_PANEL",
            "readability": "OPEN",
            "writability": "OPEN",
            "createdAt": stamp,
            "updatedAt": stamp,
            "labelIdentifierFieldMetadataId": None,
            "imageIdentifierFieldMetadataId": None,
            "isLabelSyncedWithName": is_label_synced,
            "duplicateCriteria": None,
            "fieldsList": [],
        }
        self.objects.append(obj)
        self._objects_by_id[obj["id"]] = obj
        self.store[obj["id"]] = RecordTable()
        sys_fields: list[tuple[str, str, str, str, Any, bool]] = [
            ("id", "UUID", "Id", "Icon123", "uuid", False),
            ("createdAt", "DATE_TIME", "Creation date", "IconCalendar", "now", False),
            ("updatedAt", "DATE_TIME", "Last update", "IconCalendarClock", "now", False),
            ("deletedAt", "DATE_TIME", "Deleted", "IconCalendarMinus", None, True),
            ("createdBy", "ACTOR", "Created by", "IconCreativeCommonsSa", {"name": "''", "source": "'MANUAL'"}, False),
        ]
        if self.dialect == "2.x":
            sys_fields.append(
                ("updatedBy", "ACTOR", "Updated by", "IconUserCircle", {"name": "''", "source": "'MANUAL'"}, False)
            )
        sys_fields.append(("position", "POSITION", "Position", "IconHierarchy2", 0, False))
        for name, ftype, label, field_icon, default, nullable in sys_fields:
            self._new_field(
                obj,
                name,
                ftype,
                label,
                icon=field_icon,
                default=default,
                nullable=nullable,
                system=name in ("id", "position", "updatedBy"),
                custom=False,
            )
        if name_field:
            label_field = self._new_field(
                obj, "name", name_field, "Name", icon="IconAbc", custom=False, default=None, nullable=True
            )
            obj["labelIdentifierFieldMetadataId"] = label_field["id"]
        else:
            obj["labelIdentifierFieldMetadataId"] = obj["fieldsList"][0]["id"]
        return obj

    def _new_field(
        self,
        obj: Meta,
        name: str,
        ftype: str,
        label: str,
        *,
        icon: str | None = None,
        description: str | None = None,
        custom: bool,
        default: Any = None,
        nullable: bool = True,
        unique: bool = False,
        system: bool = False,
        options: list[dict[str, Any]] | None = None,
        settings: dict[str, Any] | None = None,
        is_label_synced: bool = False,
    ) -> Meta:
        stamp = now_iso()
        field: Meta = {
            "id": new_id(),
            "universalIdentifier": new_id(),
            "applicationId": self.application_id,
            "objectMetadataId": obj["id"],
            "type": ftype,
            "name": name,
            "label": label,
            "description": description,
            "icon": icon,
            "standardOverrides": None,
            "isCustom": custom,
            "isActive": True,
            "isSystem": system,
            "isUIEditable": True,
            "isUIReadOnly": False,
            "writability": "OPEN",
            "isNullable": nullable,
            "isUnique": unique,
            "isSearchable": False,
            "isAuditLogged": True,
            "defaultValue": default,
            "options": options,
            "settings": settings,
            "isLabelSyncedWithName": is_label_synced,
            "morphId": None,
            "morphRelations": None,
            "createdAt": stamp,
            "updatedAt": stamp,
        }
        obj["fieldsList"].append(field)
        self._fields_by_id[field["id"]] = field
        # Existing rows read the new column's default, as after Twenty's ALTER TABLE.
        rows = self.records_of(obj)
        rows.forget_indexes()  # values change in place
        for record in rows.values():
            column = self.join_column(field) if ftype == "RELATION" else name
            if column and column not in record:
                record[column] = None if ftype == "RELATION" else self.field_default(field)
        return field

    def _new_relation(
        self,
        source: Meta,
        name: str,
        label: str,
        target: Meta,
        target_name: str,
        target_label: str,
        *,
        relation_type: str = "MANY_TO_ONE",
        icon: str | None = None,
        target_icon: str | None = None,
        custom: bool = False,
        description: str | None = None,
    ) -> tuple[Meta, Meta]:
        """Both sides of a relation; the MANY_TO_ONE side carries the join column `<name>Id`."""
        inverse_type = "ONE_TO_MANY" if relation_type == "MANY_TO_ONE" else "MANY_TO_ONE"

        def settings_for(rel_type: str, field_name: str) -> dict[str, Any]:
            if rel_type == "MANY_TO_ONE":
                return {"relationType": rel_type, "onDelete": "SET_NULL", "joinColumnName": f"{field_name}Id"}
            return {"relationType": rel_type}

        src = self._new_field(
            source,
            name,
            "RELATION",
            label,
            icon=icon,
            description=description,
            custom=custom,
            settings=settings_for(relation_type, name),
        )
        dst = self._new_field(
            target,
            target_name,
            "RELATION",
            target_label,
            icon=target_icon,
            custom=custom,
            settings=settings_for(inverse_type, target_name),
        )
        src["relationTargetObjectMetadataId"] = target["id"]
        src["relationTargetFieldMetadataId"] = dst["id"]
        dst["relationTargetObjectMetadataId"] = source["id"]
        dst["relationTargetFieldMetadataId"] = src["id"]
        return src, dst

    def _index_view(self, obj: Meta) -> None:
        self.views.append(
            self._view_dict(
                {"name": f"All {obj['labelPlural']}", "objectMetadataId": obj["id"], "icon": "IconList"},
                key="INDEX",
            )
        )

    # -- metadata API operations (validated) -------------------------------------------------

    def _field_name_problem(self, obj: Meta, name: str) -> TwentyError | None:
        identity = {"name": name, "objectMetadataId": obj["id"]}
        problem = name_problem(name)
        if problem:
            return metadata_invalid(
                self.dialect, "fieldMetadata", problem[0], problem[1], value=name, identity=identity
            )
        for field in obj["fieldsList"]:
            if field["name"] == name:
                message = f'Name "{name}" is not available as it is already used by another field'
                return metadata_invalid(
                    self.dialect, "fieldMetadata", "NOT_AVAILABLE", message, value=name, identity=identity
                )
            if self.join_column(field) == name:
                message = f'Name "{name}" is not available as it is already used by join column name'
                return metadata_invalid(
                    self.dialect, "fieldMetadata", "NOT_AVAILABLE", message, value=name, identity=identity
                )
        return None

    def create_object(self, data: dict[str, Any]) -> Meta:
        singular = str(data.get("nameSingular") or "")
        plural = str(data.get("namePlural") or "")
        identity = {"nameSingular": singular, "namePlural": plural}

        def invalid(
            code: str, message: str, value: Any, legacy: str = "BAD_USER_INPUT", friendly: str | None = None
        ) -> TwentyError:
            return metadata_invalid(
                self.dialect,
                "objectMetadata",
                code,
                message,
                value=value,
                identity=identity,
                legacy_code=legacy,
                user_message=friendly,
            )

        for name in (singular, plural):
            problem = name_problem(name)
            if problem:
                raise invalid(problem[0], problem[1], name)
        if singular == plural:
            raise invalid(
                "INVALID_OBJECT_INPUT", "The singular and plural names cannot be the same for an object", singular
            )
        for label_key in ("labelSingular", "labelPlural"):
            if not str(data.get(label_key) or "").strip():
                raise invalid("INVALID_LABEL", f"{label_key} is required", data.get(label_key))
        computed = (name_from_label(data["labelSingular"]), name_from_label(data["labelPlural"]))
        if data.get("isLabelSyncedWithName") and computed != (singular, plural):
            raise invalid("NAME_NOT_SYNCED_WITH_LABEL", "Names are not synced with labels", singular)
        for obj in self.objects:
            taken = {obj["nameSingular"], obj["namePlural"]}
            if singular in taken or plural in taken:
                raise invalid(
                    "OBJECT_ALREADY_EXISTS",
                    "Object already exists",
                    singular,
                    legacy="CONFLICT",
                    friendly="An object with this name already exists.",
                )
        obj = self._new_object(
            singular,
            plural,
            data["labelSingular"],
            data["labelPlural"],
            icon=data.get("icon") or "IconBox",
            description=data.get("description"),
            custom=True,
            name_field=None if data.get("skipNameField") else "TEXT",
            is_label_synced=bool(data.get("isLabelSyncedWithName")),
        )
        obj["shortcut"] = data.get("shortcut")
        obj["color"] = data.get("color")
        # Custom objects get the system relations to task and note targets, as in Twenty.
        for target_name in ("taskTarget", "noteTarget"):
            target = self.object(target_name)
            if target is not None:
                self._new_relation(
                    obj,
                    f"{target_name}s",
                    f"{target['labelPlural']}",
                    target,
                    singular,
                    data["labelSingular"],
                    relation_type="ONE_TO_MANY",
                    icon="IconCheckbox" if target_name == "taskTarget" else "IconNotes",
                    target_icon=data.get("icon") or "IconBox",
                )
        if self.dialect == "1.x":  # its list is a record of the workspace's views
            view_records.list_new_object(self, obj)
            return obj
        self._index_view(obj)
        # The new list view shows the record's name; 2.21 also its system columns (observed).
        shown = ["name", "createdAt", "createdBy", "updatedAt", "updatedBy"]
        for position, name in enumerate(shown):
            found = self.field(obj, name)
            if found is not None:
                self.create_view_field(
                    {"viewId": self.views[-1]["id"], "fieldMetadataId": found["id"], "position": position, "size": 180}
                )
        return obj

    def update_object(self, object_id: str, update: dict[str, Any]) -> Meta:
        obj = self.require_object(object_id)
        for key in ("labelSingular", "labelPlural", "description", "icon", "shortcut", "color", "isActive"):
            if key in update and update[key] is not None:
                obj[key] = update[key]
        if update.get("labelIdentifierFieldMetadataId"):
            field = self.require_field(update["labelIdentifierFieldMetadataId"])
            if field["objectMetadataId"] != obj["id"]:
                raise TwentyError("Label identifier field must belong to the object")
            obj["labelIdentifierFieldMetadataId"] = field["id"]
        for key in ("nameSingular", "namePlural"):
            if update.get(key) and update[key] != obj[key]:
                if not obj["isCustom"]:
                    raise TwentyError("Standard objects cannot be renamed", "FORBIDDEN", status=403)
                problem = name_problem(update[key])
                if problem:
                    raise metadata_invalid(self.dialect, "objectMetadata", problem[0], problem[1], value=update[key])
                obj[key] = update[key]
        obj["updatedAt"] = now_iso()
        return obj

    def delete_object(self, object_id: str) -> Meta:
        obj = self.require_object(object_id)
        if not obj["isCustom"]:
            raise TwentyError("Standard objects cannot be deleted", "FORBIDDEN", status=403)
        for field in list(obj["fieldsList"]):
            if field["type"] == "RELATION":
                target = self.relation_target(field)
                if target:
                    self._drop_field(target[1])
        self.objects.remove(obj)
        del self._objects_by_id[obj["id"]]
        for field in obj["fieldsList"]:
            self._fields_by_id.pop(field["id"], None)
        self.store.pop(obj["id"], None)
        self.views = [v for v in self.views if v["objectMetadataId"] != obj["id"]]
        view_records.forget_object(self, obj)
        return obj

    def create_field(self, data: dict[str, Any]) -> Meta:
        obj = self.require_object(str(data.get("objectMetadataId")))
        ftype = str(data.get("type"))
        name = str(data.get("name") or "")
        label = str(data.get("label") or "")
        if ftype in NOT_CREATABLE_TYPES:
            raise TwentyError(f"{ftype} fields cannot be created through the API")
        if not label.strip():
            raise TwentyError("Field label is required")
        error = self._field_name_problem(obj, name)
        if error:
            raise error
        if data.get("isLabelSyncedWithName") and name_from_label(label) != name:
            raise metadata_invalid(
                self.dialect, "fieldMetadata", "NAME_NOT_SYNCED_WITH_LABEL", "Name is not synced with label", value=name
            )
        unique = bool(data.get("isUnique"))
        if unique and ftype not in UNIQUE_CAPABLE_TYPES:
            raise TwentyError(f"Unique index cannot be created for field of type {ftype}")
        common: dict[str, Any] = {
            "icon": data.get("icon"),
            "description": data.get("description"),
            "custom": True,
            "is_label_synced": bool(data.get("isLabelSyncedWithName")),
        }
        if ftype == "RELATION":
            source = self._create_relation_field(obj, name, label, data, common)
            target = self.relation_target(source)
            both = [source, *([target[1]] if target else [])]
            file_new_fields(self, both)
            list_new_fields(self, both)
            view_records.list_new_fields(self, both)
            return source
        options = None
        if ftype in ("SELECT", "MULTI_SELECT"):
            options = self._checked_options(data.get("options"), require_ids=False)
            self._check_select_default(ftype, data.get("defaultValue"), options)
        nullable = data.get("isNullable")
        field = self._new_field(
            obj,
            name,
            ftype,
            label,
            default=data.get("defaultValue"),
            nullable=True if nullable is None else bool(nullable),
            unique=unique,
            options=options,
            settings=data.get("settings"),
            **common,
        )
        if data.get("isActive") is False:
            field["isActive"] = False
        file_new_fields(self, [field])
        list_new_fields(self, [field])
        view_records.list_new_fields(self, [field])
        return field

    def _checked_options(self, options: Any, *, require_ids: bool) -> list[dict[str, Any]]:
        problems = option_problems(options, require_ids=require_ids)
        if problems:
            raise TwentyError("; ".join(problems))
        checked: list[dict[str, Any]] = []
        for index, option in enumerate(options):
            checked.append(
                {
                    "id": option.get("id") or new_id(),
                    "value": option["value"],
                    "label": option["label"],
                    "color": option.get("color") or "gray",
                    "position": option.get("position", index),
                }
            )
        return checked

    @staticmethod
    def _check_select_default(ftype: str, default: Any, options: list[dict[str, Any]]) -> None:
        if default is None:
            return
        values = {o["value"] for o in options}
        defaults = default if ftype == "MULTI_SELECT" and isinstance(default, list) else [default]
        for item in defaults:
            inner = unquote_default(item)
            if not isinstance(item, str) or inner == item:
                raise TwentyError(f"Default value {item!r} must be a quoted string such as \"'VALUE'\"")
            if inner not in values:
                raise TwentyError(f"Default value {item} is not one of the field's options")

    def _create_relation_field(
        self, obj: Meta, name: str, label: str, data: dict[str, Any], common: dict[str, Any]
    ) -> Meta:
        payload = data.get("relationCreationPayload")
        if not isinstance(payload, dict):
            raise TwentyError("Relation creation payload is not defined")
        relation_type = payload.get("type")
        if relation_type not in ("MANY_TO_ONE", "ONE_TO_MANY"):
            raise TwentyError(f"Relation type {relation_type!r} is not supported (MANY_TO_ONE or ONE_TO_MANY)")
        target_id = payload.get("targetObjectMetadataId")
        if not is_uuid(target_id):
            raise TwentyError("relationCreationPayload.targetObjectMetadataId must be a UUID")
        target = self._objects_by_id.get(str(target_id))
        if target is None:
            raise not_found(f"Target object metadata {target_id} not found")
        target_label = payload.get("targetFieldLabel")
        if not isinstance(target_label, str) or not target_label.strip():
            raise TwentyError("relationCreationPayload.targetFieldLabel is required")
        target_name = payload.get("targetFieldName") or name_from_label(target_label)
        if relation_type == "MANY_TO_ONE":
            error = self._field_name_problem(obj, f"{name}Id")
            if error:
                raise error
        error = self._field_name_problem(target, target_name)
        if error:
            raise error
        if relation_type == "ONE_TO_MANY":
            error = self._field_name_problem(target, f"{target_name}Id")
            if error:
                raise error
        source_field, _ = self._new_relation(
            obj,
            name,
            label,
            target,
            target_name,
            target_label,
            relation_type=relation_type,
            icon=common["icon"],
            target_icon=payload.get("targetFieldIcon"),
            custom=True,
            description=common["description"],
        )
        return source_field

    def update_field(self, field_id: str, update: dict[str, Any]) -> Meta:
        field = self.require_field(field_id)
        obj = self.require_object(field["objectMetadataId"])
        rows = self.records_of(obj)
        rows.forget_indexes()  # options and renames change values in place
        records = rows.values()
        if "options" in update and update["options"] is not None:
            if field["type"] not in ("SELECT", "MULTI_SELECT"):
                raise TwentyError("Options can only be set on SELECT and MULTI_SELECT fields")
            options = self._checked_options(update["options"], require_ids=True)
            values = {o["value"] for o in options}
            before = field["options"] or []
            field["options"] = options
            recompute_columns(self, field, before)
            view_records.follow_options(self, field, before)
            # Rows holding a removed option lose it, as Twenty's enum migration does.
            for record in records:
                current = record.get(field["name"])
                if isinstance(current, list):
                    record[field["name"]] = [v for v in current if v in values] or None
                elif current is not None and current not in values:
                    record[field["name"]] = None
        if "defaultValue" in update:
            if field["type"] in ("SELECT", "MULTI_SELECT"):
                self._check_select_default(field["type"], update["defaultValue"], field["options"] or [])
            field["defaultValue"] = update["defaultValue"]
        if update.get("name") and update["name"] != field["name"]:
            if field["type"] == "RELATION" or not field["isCustom"]:
                raise TwentyError("Only custom non-relation fields can be renamed")
            error = self._field_name_problem(obj, update["name"])
            if error:
                raise error
            old, new = field["name"], update["name"]
            for record in records:
                record[new] = record.pop(old, None)
            field["name"] = new
        if update.get("isUnique") is not None and bool(update["isUnique"]) != bool(field["isUnique"]):
            if update["isUnique"]:
                if field["type"] not in UNIQUE_CAPABLE_TYPES:
                    raise TwentyError(f"Unique index cannot be created for field of type {field['type']}")
                seen: set[str] = set()
                for record in records:
                    value = record.get(field["name"])
                    key = repr(value)
                    if value not in (None, "") and key in seen:
                        raise TwentyError(f"Cannot make {field['label']} unique: duplicate values exist")
                    seen.add(key)
            field["isUnique"] = bool(update["isUnique"])
        for key in ("label", "description", "icon", "isActive", "isNullable", "settings", "isLabelSyncedWithName"):
            if key in update and update[key] is not None:
                field[key] = update[key]
        field["updatedAt"] = now_iso()
        return field

    def delete_field(self, field_id: str) -> Meta:
        field = self.require_field(field_id)
        if field["isActive"]:
            raise TwentyError("Active fields can't be deleted")  # observed #11
        if not field["isCustom"]:
            raise TwentyError("Standard fields can't be deleted", "FORBIDDEN", status=403)
        if field["type"] == "RELATION":
            target = self.relation_target(field)
            if target:
                self._drop_field(target[1])
        self._drop_field(field)
        return field

    def _drop_field(self, field: Meta) -> None:
        obj = self._objects_by_id.get(field["objectMetadataId"])
        self._fields_by_id.pop(field["id"], None)
        if obj is None:
            return
        obj["fieldsList"] = [f for f in obj["fieldsList"] if f["id"] != field["id"]]
        self.view_fields = [f for f in self.view_fields if f["fieldMetadataId"] != field["id"]]
        column = self.join_column(field) if field["type"] == "RELATION" else field["name"]
        rows = self.records_of(obj)
        rows.forget_indexes()
        for record in rows.values():
            if column:
                record.pop(column, None)

    # -- views and navigation menu items ----------------------------------------------------

    def _view_dict(self, data: dict[str, Any], *, key: str | None = None) -> Meta:
        stamp = now_iso()
        view_type = data.get("type") or "TABLE"
        return {
            "id": data.get("id") or new_id(),
            "universalIdentifier": new_id(),
            "applicationId": self.application_id,
            "isSystemSideEffect": False,
            "name": data["name"],
            "objectMetadataId": data["objectMetadataId"],
            "type": view_type,
            "key": data.get("key", key),
            "icon": data.get("icon") or "IconList",
            "position": data.get("position") or 0,
            "isCompact": bool(data.get("isCompact")),
            "isCustom": key is None,
            "openRecordIn": data.get("openRecordIn") or "SIDE_PANEL",
            "kanbanAggregateOperation": data.get("kanbanAggregateOperation"),
            "kanbanAggregateOperationFieldMetadataId": data.get("kanbanAggregateOperationFieldMetadataId"),
            "mainGroupByFieldMetadataId": data.get("mainGroupByFieldMetadataId"),
            "shouldHideEmptyGroups": bool(data.get("shouldHideEmptyGroups")),
            "kanbanColumnWidth": data.get("kanbanColumnWidth"),
            "groupLoadLimit": data.get("groupLoadLimit"),
            "calendarFieldMetadataId": data.get("calendarFieldMetadataId"),
            "calendarEndFieldMetadataId": data.get("calendarEndFieldMetadataId"),
            "calendarLayout": data.get("calendarLayout"),
            "workspaceId": self.id,
            "anyFieldFilterValue": data.get("anyFieldFilterValue"),
            "visibility": data.get("visibility") or "WORKSPACE",
            "createdByUserWorkspaceId": None,
            "isActive": True,
            "createdAt": stamp,
            "updatedAt": stamp,
            "deletedAt": None,
        }

    def create_view(self, data: dict[str, Any]) -> Meta:
        obj = self.require_object(str(data.get("objectMetadataId")))
        if not str(data.get("name") or "").strip():
            raise TwentyError("View name is required")
        view = self._view_dict(data)
        group_by_id = data.get("mainGroupByFieldMetadataId")
        if view["type"] == "KANBAN" and self.dialect == "2.x":
            # 2.x computes one view group per option of the group-by SELECT on create.
            if not group_by_id:
                raise metadata_invalid(
                    self.dialect,
                    "fieldMetadata",
                    "INVALID_VIEW_DATA",
                    "A KANBAN view needs mainGroupByFieldMetadataId",
                )
            field = self.require_field(str(group_by_id))
            if field["objectMetadataId"] != obj["id"] or field["type"] != "SELECT":
                raise TwentyError("mainGroupByFieldMetadataId must be a SELECT field of the view's object")
            for option in sorted(field["options"] or [], key=lambda o: o["position"]):
                self.view_groups.append(
                    self._view_group_dict(view["id"], field["id"], option["value"], option["position"])
                )
        self.views.append(view)
        return view

    def _view_group_dict(self, view_id: str, field_id: str | None, value: str, position: float) -> Meta:
        stamp = now_iso()
        return {
            "id": new_id(),
            "fieldMetadataId": field_id,
            "isVisible": True,
            "fieldValue": value,
            "position": position,
            "viewId": view_id,
            "workspaceId": self.id,
            "createdAt": stamp,
            "updatedAt": stamp,
            "deletedAt": None,
        }

    def create_view_group(self, data: dict[str, Any]) -> Meta:
        view = self.require_view(str(data.get("viewId")))
        field_id = data.get("fieldMetadataId") or view.get("mainGroupByFieldMetadataId")
        group = self._view_group_dict(view["id"], field_id, str(data.get("fieldValue")), data.get("position") or 0)
        if data.get("isVisible") is not None:
            group["isVisible"] = bool(data["isVisible"])
        self.view_groups.append(group)
        return group

    def _check_position(self, position: Any) -> None:
        """1.x keeps a view field's position in an integer column (observed: a fraction is
        refused with Postgres's error as a 500)."""
        if self.dialect == "1.x" and isinstance(position, float) and not position.is_integer():
            raise TwentyError(f'invalid input syntax for type integer: "{position}"', "INTERNAL_SERVER_ERROR")

    def create_view_field(self, data: dict[str, Any]) -> Meta:
        self._check_position(data.get("position"))
        view = self.require_view(str(data.get("viewId")))
        field = self.require_field(str(data.get("fieldMetadataId")))
        if field["objectMetadataId"] != view["objectMetadataId"]:
            raise TwentyError("The field does not belong to the view's object")
        if any(f["viewId"] == view["id"] and f["fieldMetadataId"] == field["id"] for f in self.view_fields):
            raise TwentyError(f"View field for {field['name']} already exists in this view", "BAD_USER_INPUT")
        group_id = data.get("viewFieldGroupId")
        if group_id is not None:
            self._require_field_group(str(group_id), view["id"])
        stamp = now_iso()
        view_field = {
            "id": data.get("id") or new_id(),
            "universalIdentifier": new_id(),
            "applicationId": self.application_id,
            "isSystemSideEffect": False,
            "fieldMetadataId": data["fieldMetadataId"],
            "isVisible": data.get("isVisible", True) is not False,
            "size": data.get("size") or 0,
            "position": data.get("position") or 0,
            "aggregateOperation": data.get("aggregateOperation"),
            "viewId": view["id"],
            "viewFieldGroupId": group_id,
            "workspaceId": self.id,
            "isActive": True,
            "createdAt": stamp,
            "updatedAt": stamp,
            "deletedAt": None,
        }
        self.view_fields.append(view_field)
        return view_field

    def create_view_fields(self, inputs: list[dict[str, Any]]) -> list[Meta]:
        """createManyViewFields: all or nothing, as one workspace migration is."""
        keep = list(self.view_fields)
        try:
            return [self.create_view_field(i) for i in inputs]
        except TwentyError:
            self.view_fields = keep
            raise

    def update_view_field(self, view_field_id: str, update: dict[str, Any]) -> Meta:
        self._check_position(update.get("position"))
        view_field = next((f for f in self.view_fields if f["id"] == view_field_id), None)
        if view_field is None:
            raise not_found(f"View field {view_field_id} not found")
        if update.get("viewFieldGroupId") is not None:
            self._require_field_group(str(update["viewFieldGroupId"]), view_field["viewId"])
        for key in ("isVisible", "size", "position", "aggregateOperation", "viewFieldGroupId"):
            if key in update and (update[key] is not None or key in ("aggregateOperation", "viewFieldGroupId")):
                view_field[key] = update[key]
        view_field["updatedAt"] = later_than(view_field["createdAt"])
        return view_field

    def create_view_field_group(self, data: dict[str, Any]) -> Meta:
        view = self.require_view(str(data.get("viewId")))
        name = str(data.get("name") or "").strip()
        if not name:
            raise TwentyError("View field group name is required")
        stamp = now_iso()
        group = {
            "id": data.get("id") or new_id(),
            "name": name,
            "position": data.get("position") or 0,
            "isVisible": data.get("isVisible", True) is not False,
            "viewId": view["id"],
            "workspaceId": self.id,
            "createdAt": stamp,
            "updatedAt": stamp,
            "isActive": True,
            "deletedAt": None,
            "isOverridden": False,
        }
        self.view_field_groups.append(group)
        return group

    def update_view_field_group(self, group_id: str, update: dict[str, Any]) -> Meta:
        group = next((g for g in self.view_field_groups if g["id"] == group_id), None)
        if group is None:
            raise not_found(f"View field group {group_id} not found")
        for key in ("name", "position", "isVisible"):
            if update.get(key) is not None:
                group[key] = update[key]
        group["updatedAt"] = now_iso()
        return group

    def _require_field_group(self, group_id: str, view_id: str) -> Meta:
        group = next((g for g in self.view_field_groups if g["id"] == group_id), None)
        if group is None or group["viewId"] != view_id:
            raise TwentyError(f"View field group {group_id} is not a group of view {view_id}")
        return group

    def require_view(self, view_id: str) -> Meta:
        for view in self.views:
            if view["id"] == view_id:
                return view
        raise not_found(f"View {view_id} not found")

    def delete_view(self, view_id: str) -> bool:
        view = self.require_view(view_id)
        self.views.remove(view)
        self.view_groups = [g for g in self.view_groups if g["viewId"] != view_id]
        self.view_fields = [f for f in self.view_fields if f["viewId"] != view_id]
        self.view_field_groups = [g for g in self.view_field_groups if g["viewId"] != view_id]
        return True

    def create_nav_item(self, data: dict[str, Any]) -> Meta:
        item_type = data.get("type")
        if item_type == "LINK" and not str(data.get("link") or "").strip():
            raise TwentyError("A LINK navigation menu item needs a link")
        if item_type == "VIEW" and not data.get("viewId"):
            raise TwentyError("A VIEW navigation menu item needs a viewId")
        if item_type == "OBJECT" and not data.get("targetObjectMetadataId"):
            raise TwentyError("An OBJECT navigation menu item needs a targetObjectMetadataId")
        stamp = now_iso()
        position = data.get("position")
        if position is None:
            position = max((i["position"] for i in self.nav_items), default=-1) + 1
        item = {
            "id": data.get("id") or new_id(),
            "userWorkspaceId": data.get("userWorkspaceId"),
            "targetRecordId": data.get("targetRecordId"),
            "targetObjectMetadataId": data.get("targetObjectMetadataId"),
            "viewId": data.get("viewId"),
            "type": item_type,
            "name": data.get("name"),
            "link": data.get("link"),
            "icon": data.get("icon"),
            "color": data.get("color"),
            "folderId": data.get("folderId"),
            "pageLayoutId": data.get("pageLayoutId"),
            "position": position,
            "applicationId": None,
            "createdAt": stamp,
            "updatedAt": stamp,
            "targetRecordIdentifier": None,
        }
        self.nav_items.append(item)
        return item

    def delete_nav_item(self, item_id: str) -> Meta:
        for item in self.nav_items:
            if item["id"] == item_id:
                self.nav_items.remove(item)
                return item
        raise not_found(f"Navigation menu item {item_id} not found")


def _seed_standard_objects(ws: Workspace) -> None:
    """The standard objects a fresh workspace has, trimmed to what the bridge touches."""
    two = ws.dialect == "2.x"
    std: dict[str, Any] = {"custom": False}

    person = ws._new_object("person", "people", "Person", "People", icon="IconUser", name_field="FULL_NAME")
    ws._new_field(person, "emails", "EMAILS", "Emails", icon="IconMail", unique=True, **std)
    ws._new_field(person, "linkedinLink", "LINKS", "Linkedin", icon="IconBrandLinkedin", **std)
    ws._new_field(person, "xLink", "LINKS", "X", icon="IconBrandX", **std)
    ws._new_field(person, "jobTitle", "TEXT", "Job Title", icon="IconBriefcase", default="''", **std)
    ws._new_field(person, "phones", "PHONES", "Phones", icon="IconPhone", **std)
    ws._new_field(person, "city", "TEXT", "City", icon="IconMap", default="''", **std)
    ws._new_field(person, "avatarUrl", "TEXT", "Avatar", icon="IconFileUpload", default="''", **std)

    company = ws._new_object("company", "companies", "Company", "Companies", icon="IconBuildingSkyscraper")
    ws._new_field(company, "domainName", "LINKS", "Domain", icon="IconLink", unique=True, **std)
    ws._new_field(company, "employees", "NUMBER", "Employees", icon="IconUsers", **std)
    ws._new_field(company, "linkedinLink", "LINKS", "Linkedin", icon="IconBrandLinkedin", **std)
    ws._new_field(company, "address", "ADDRESS", "Address", icon="IconMap", **std)
    ws._new_field(company, "annualRecurringRevenue", "CURRENCY", "ARR", icon="IconMoneybag", **std)
    ws._new_field(company, "idealCustomerProfile", "BOOLEAN", "ICP", icon="IconTarget", default=False, **std)

    opportunity = ws._new_object("opportunity", "opportunities", "Opportunity", "Opportunities", icon="IconTargetArrow")
    ws._new_field(opportunity, "amount", "CURRENCY", "Amount", icon="IconCurrencyDollar", **std)
    ws._new_field(opportunity, "closeDate", "DATE_TIME", "Close date", icon="IconCalendarEvent", **std)
    stages = [("NEW", "New", "red"), ("SCREENING", "Screening", "purple"), ("MEETING", "Meeting", "sky")]
    stages += [("PROPOSAL", "Proposal", "turquoise"), ("CUSTOMER", "Customer", "yellow")]
    if two:
        stages.append(("NO_STAGE", "No stage", "gray"))
    ws._new_field(
        opportunity,
        "stage",
        "SELECT",
        "Stage",
        icon="IconProgressCheck",
        default="'NEW'",
        nullable=False,
        options=[
            {"id": new_id(), "value": v, "label": lab, "color": c, "position": i}
            for i, (v, lab, c) in enumerate(stages)
        ],
        **std,
    )

    task = ws._new_object("task", "tasks", "Task", "Tasks", icon="IconCheckbox", name_field=None)
    title = ws._new_field(task, "title", "TEXT", "Title", icon="IconNotes", default="''", **std)
    task["labelIdentifierFieldMetadataId"] = title["id"]
    rich = "RICH_TEXT" if two else "RICH_TEXT_V2"
    ws._new_field(task, "bodyV2", rich, "Body", icon="IconFilePencil", **std)
    if not two:
        ws._new_field(task, "body", "TEXT", "Body (deprecated)", icon="IconFilePencil", default="''", **std)
    ws._new_field(task, "dueAt", "DATE_TIME", "Due Date", icon="IconCalendarEvent", **std)
    ws._new_field(
        task,
        "status",
        "SELECT",
        "Status",
        icon="IconProgressCheck",
        default="'TODO'",
        options=[
            {"id": new_id(), "value": v, "label": lab, "color": c, "position": i}
            for i, (v, lab, c) in enumerate(
                [("TODO", "To do", "sky"), ("IN_PROGRESS", "In progress", "purple"), ("DONE", "Done", "green")]
            )
        ],
        **std,
    )

    note = ws._new_object("note", "notes", "Note", "Notes", icon="IconNotes", name_field=None)
    note_title = ws._new_field(note, "title", "TEXT", "Title", icon="IconNotes", default="''", **std)
    note["labelIdentifierFieldMetadataId"] = note_title["id"]
    ws._new_field(note, "bodyV2", rich, "Body", icon="IconFilePencil", **std)
    if not two:
        ws._new_field(note, "body", "TEXT", "Body (deprecated)", icon="IconFilePencil", default="''", **std)

    task_target = ws._new_object(
        "taskTarget", "taskTargets", "Task Target", "Task Targets", icon="IconCheckbox", system=True, name_field=None
    )
    note_target = ws._new_object(
        "noteTarget", "noteTargets", "Note Target", "Note Targets", icon="IconCheckbox", system=True, name_field=None
    )
    member = ws._new_object(
        "workspaceMember",
        "workspaceMembers",
        "Workspace Member",
        "Workspace Members",
        icon="IconUserCircle",
        system=True,
        name_field="FULL_NAME",
    )
    ws._new_field(member, "userEmail", "TEXT", "User Email", icon="IconMail", default="''", **std)
    ws._new_field(member, "colorScheme", "TEXT", "Color Scheme", icon="IconColorSwatch", default="'System'", **std)
    ws._new_field(member, "locale", "TEXT", "Language", icon="IconLanguage", default="'en'", **std)
    ws._new_field(member, "avatarUrl", "TEXT", "Avatar Url", icon="IconFileUpload", default="''", **std)
    ws._new_field(member, "userId", "UUID", "User Id", icon="IconCircleUsers", **std)

    # The timeline of a record page: Twenty's own entries ("person.created", "opportunity.updated"
    # with `properties.diff`) and what an API writes, linking a record by its object's metadata
    # id (observed on 2.21). 1.x points at its targets through `personId`…; 2.x through the morph
    # relation's join columns `targetPersonId`…
    timeline = ws._new_object(
        "timelineActivity",
        "timelineActivities",
        "Timeline Activity",
        "Timeline Activities",
        icon="IconTimelineEvent",
        system=True,
        name_field=None,
    )
    ws._new_field(timeline, "happensAt", "DATE_TIME", "Creation date", icon="IconCalendar", default="now", **std)
    event_name = ws._new_field(timeline, "name", "TEXT", "Event name", icon="IconAbc", default="''", **std)
    timeline["labelIdentifierFieldMetadataId"] = event_name["id"]
    ws._new_field(timeline, "properties", "RAW_JSON", "Event details", icon="IconListDetails", **std)
    ws._new_field(
        timeline, "linkedRecordCachedName", "TEXT", "Linked Record cached name", icon="IconAbc", default="''", **std
    )
    ws._new_field(timeline, "linkedRecordId", "UUID", "Linked Record id", icon="IconAbc", **std)
    ws._new_field(timeline, "linkedObjectMetadataId", "UUID", "Linked Object Metadata Id", icon="IconAbc", **std)

    rel = ws._new_relation
    rel(
        person,
        "company",
        "Company",
        company,
        "people",
        "People",
        icon="IconBuildingSkyscraper",
        target_icon="IconUsers",
    )
    rel(company, "accountOwner", "Account Owner", member, "accountOwnerForCompanies", "Account Owner For Companies")
    rel(
        opportunity,
        "pointOfContact",
        "Point of Contact",
        person,
        "pointOfContactForOpportunities",
        "Linked Opportunities",
        icon="IconUser",
        target_icon="IconTargetArrow",
    )
    rel(opportunity, "company", "Company", company, "opportunities", "Opportunities", icon="IconBuildingSkyscraper")
    if two:
        rel(opportunity, "owner", "Owner", member, "ownedOpportunities", "Owned opportunities", icon="IconUserCircle")
    rel(task, "assignee", "Assignee", member, "assignedTasks", "Assigned tasks", icon="IconUserCircle")
    rel(task_target, "task", "Task", task, "taskTargets", "Relations", icon="IconCheckbox")
    rel(note_target, "note", "Note", note, "noteTargets", "Relations", icon="IconNotes")
    for target in (person, company, opportunity):
        rel(task_target, target["nameSingular"], target["labelSingular"], target, "taskTargets", "Tasks")
        rel(note_target, target["nameSingular"], target["labelSingular"], target, "noteTargets", "Notes")
    rel(timeline, "workspaceMember", "Workspace Member", member, "timelineActivities", "Events", icon="IconCircleUser")
    for target in (person, company, opportunity, note, task):
        singular = target["nameSingular"]
        side, _ = rel(
            timeline,
            f"target{singular[:1].upper()}{singular[1:]}" if two else singular,
            target["labelSingular"],
            target,
            "timelineActivities",
            "Timeline Activities",
            icon=target["icon"],
            target_icon="IconTimelineEvent",
        )
        if two:
            # One morph relation: the metadata API lists it once, as `target` (observed on 2.21).
            side["morphGroup"] = "target"

    if two:  # Dashboards (2.x): each record names a DASHBOARD page layout
        dashboard = ws._new_object("dashboard", "dashboards", "Dashboard", "Dashboards", icon="IconLayoutDashboard")
        dashboard["fieldsList"].remove(ws.field(dashboard, "name"))
        title = ws._new_field(dashboard, "title", "TEXT", "Title", icon="IconNotes", **std)
        dashboard["labelIdentifierFieldMetadataId"] = title["id"]
        ws._new_field(dashboard, "pageLayoutId", "UUID", "Page layout id", icon="IconLayout", **std)

    if two:
        for obj in ws.objects:
            if not obj["isSystem"]:
                ws._index_view(obj)
        seed_standard_views(ws)
        seed_first_dashboard(ws)
    else:  # 1.x: the lists and the board are records of the workspace's views, no core views
        view_records.seed_view_objects(ws)
        view_records.seed_view_records(ws)

    # One workspace member, so the UI and actor fields have someone to point at.
    tim = ws.blank_record(member)
    stamp = now_iso()
    tim.update(
        id=new_id(),
        name={"firstName": "Tim", "lastName": "Apple"},
        userEmail="tim@apple.dev",
        createdAt=stamp,
        updatedAt=stamp,
        deletedAt=None,
        position=ws.next_position(member),
        createdBy={"source": "MANUAL", "workspaceMemberId": None, "name": "System", "context": {}},
    )
    if two:
        tim["updatedBy"] = dict(tim["createdBy"])
    ws.records_of(member)[tim["id"]] = tim
