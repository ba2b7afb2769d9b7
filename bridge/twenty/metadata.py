"""Client for Twenty's metadata GraphQL API (`POST /metadata`), built on gql over httpx.

The client introspects the server once, decides which dialect it speaks (1.x has
`createCoreView`, 2.x has `createView`), and from then on validates every document against
that schema before sending it (`introspection.py` builds it once per distinct answer). What an
answer means is `twenty/responses.py`'s table, the same one the data client reads, and the
retries are `bridge/retry.py`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import httpx

from bridge import retry
from bridge.errors import BridgeError, FatalError
from bridge.limiter import Limiter
from bridge.retry import Action, Failure, RetryPolicy
from bridge.twenty import documents as docs
from bridge.twenty import responses
from bridge.twenty.documents import Dialect
from bridge.twenty.responses import AlreadyExists as AlreadyExists
from bridge.twenty.responses import Answer, Api
from bridge.twenty.responses import MetadataError as MetadataError

if TYPE_CHECKING:
    # gql and graphql-core are imported when a client first connects, not with this module: the
    # records below are read by every bridge process, most of which never send a metadata
    # document (the two took ~0.2 s of each command's start).
    from gql import Client
    from gql.client import AsyncClientSession
    from graphql import GraphQLSchema

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveField:
    id: str
    name: str
    type: str
    label: str
    is_active: bool
    is_unique: bool
    options: tuple[dict[str, Any], ...]
    relation_type: str | None = None
    relation_target: str | None = None  # nameSingular of the target object
    relation_target_field: str | None = None  # the target's field pointing back
    description: str | None = None
    is_nullable: bool = True

    @classmethod
    def from_node(cls, node: dict[str, Any]) -> LiveField:
        relation = node.get("relation") or {}
        target = relation.get("targetObjectMetadata") or {}
        return cls(
            id=node["id"],
            name=node["name"],
            type=node["type"],
            label=node.get("label") or node["name"],
            is_active=node.get("isActive") is not False,
            is_unique=bool(node.get("isUnique")),
            options=tuple(node.get("options") or ()),
            relation_type=relation.get("type"),
            relation_target=target.get("nameSingular"),
            relation_target_field=(relation.get("targetFieldMetadata") or {}).get("name"),
            description=node.get("description"),
            is_nullable=node.get("isNullable") is not False,
        )


@dataclass(frozen=True)
class LiveObject:
    id: str
    name_singular: str
    name_plural: str
    is_active: bool
    fields: dict[str, LiveField] = field(default_factory=dict)

    @classmethod
    def from_node(cls, node: dict[str, Any]) -> LiveObject:
        return cls(
            id=node["id"],
            name_singular=node["nameSingular"],
            name_plural=node["namePlural"],
            is_active=node.get("isActive") is not False,
            fields={f["name"]: LiveField.from_node(f) for f in node.get("fieldsList") or ()},
        )


@dataclass(frozen=True)
class LiveViewField:
    id: str
    field_id: str
    visible: bool
    position: float
    group_id: str | None = None  # the record-page section (2.x view field group) it sits in
    size: float = 0.0
    # Never changed since it was made: a hidden one is as Twenty made it when its field was
    # created (2.21 adds every new field to the object's list view, hidden), not a person's choice.
    untouched: bool = False

    @classmethod
    def from_node(cls, node: dict[str, Any]) -> LiveViewField:
        return cls(
            id=node["id"],
            field_id=node["fieldMetadataId"],
            visible=node.get("isVisible") is not False,
            position=float(node.get("position") or 0),
            group_id=node.get("viewFieldGroupId"),
            size=float(node.get("size") or 0),
            untouched=unchanged_since_made(node, slack=0.0),
        )


def unchanged_since_made(node: dict[str, Any], slack: float = 2.0) -> bool:
    """Whether a metadata item's updatedAt is its createdAt (within `slack` seconds: Twenty
    stamps the two separately when it makes one)."""
    made, changed = parse_time(node.get("createdAt")), parse_time(node.get("updatedAt"))
    return made is not None and changed is not None and (changed - made).total_seconds() <= slack


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass(frozen=True)
class LiveFieldGroup:
    """A section of a record page (2.x `ViewFieldGroup`)."""

    id: str
    name: str
    position: float


@dataclass(frozen=True)
class LiveView:
    id: str
    name: str
    type: str
    key: str | None
    group_field_id: str | None  # a Kanban's SELECT field (2.x says it; 1.x's groups do)
    fields: tuple[LiveViewField, ...] = ()
    column_values: tuple[str, ...] = ()  # a Kanban's columns (view groups), by option value
    last_column_position: float = -1.0
    field_groups: tuple[LiveFieldGroup, ...] = ()
    kanban_aggregate: str | None = None  # a Kanban's column aggregate (SUM, COUNT, …)
    kanban_aggregate_field_id: str | None = None
    position: float = 0.0  # where the view picker lists it among the object's views


@dataclass(frozen=True)
class NewViewField:
    field_id: str
    position: float
    group_id: str | None = None
    size: int | None = None  # None: COLUMN_SIZE


# Twenty's frontend gives a new column this width; 1.x's API default (0) would hide it.
COLUMN_SIZE = 180


class MetadataClient:
    """`async with MetadataClient(url, key) as meta:` then `meta.dialect`, `await meta.list_objects()`…"""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        limiter: Limiter | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        requests_per_minute: int = 100,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + "/metadata"
        # Twenty's throttle is on the data API (research/twenty-api.md §4), so by default metadata
        # calls take no token; a server that answers 429 anyway is waited out and retried.
        self._limiter = limiter
        self.retry = retry_policy or retry.DEFAULT.replace(sleep=sleep)
        self._throttle_floor = 60.0 / requests_per_minute  # Twenty refills one request in this
        self._answered = False  # until Twenty first answers, a refused connection is not retried for long
        self._api_key = api_key
        self._transport = transport
        self._timeout = timeout
        self._client: Client | None = None
        self._session: AsyncClientSession | None = None
        self._schema: GraphQLSchema | None = None
        self.dialect: Dialect = Dialect.V2
        self.mutations = 0  # how many mutations this client sent (the provisioner reports it)

    async def __aenter__(self) -> Self:
        schema = await retry.call(self._connect, self.retry, what=f"twenty introspection of {self.url}")
        self.dialect = detect_dialect(schema)
        log.info("twenty metadata API speaks %s", self.dialect.value)
        return self

    async def _connect(self) -> GraphQLSchema | Failure:
        """One introspection, on a client of its own (a failed one is closed, not reused)."""
        from gql import Client, GraphQLRequest
        from gql.transport.httpx import HTTPXAsyncTransport
        from gql.utilities import get_introspection_query_ast

        from bridge.twenty import introspection

        kwargs: dict[str, Any] = {
            "headers": {"Authorization": f"Bearer {self._api_key}"},
            "timeout": self._timeout,
        }
        if self._transport is not None:
            kwargs["transport"] = self._transport
        # No schema given to gql: the client validates documents itself (`execute`), with the
        # schema built once per distinct introspection answer (`introspection.py`).
        transport = HTTPXAsyncTransport(url=self.url, json_deserialize=introspection.decode, **kwargs)
        client = Client(transport=transport, execute_timeout=self._timeout)
        what = f"introspection of {self.url}"
        try:
            session = await client.connect_async(reconnecting=False)  # type: ignore[no-untyped-call]
            answer = await session.transport.execute(GraphQLRequest(get_introspection_query_ast()))
        except BridgeError:
            await self._close_client(client)
            raise
        except Exception as exc:
            await self._close_client(client)
            return self._failure(exc, what)
        self._answered = True
        if answer.errors:
            await self._close_client(client)
            return self._classify(responses.from_errors(Api.METADATA, what, [_as_dict(e) for e in answer.errors]))
        if not answer.data or "__schema" not in answer.data:
            await self._close_client(client)
            error = FatalError("Twenty did not return its metadata schema; check TWENTY_URL and TWENTY_API_KEY")
            return Failure(Action.FATAL, error, row="no schema")
        self._client, self._session = client, session
        self._schema = introspection.client_schema(answer.data)
        return self._schema

    @staticmethod
    async def _close_client(client: Client) -> None:
        # Closing a half-open transport must not hide the real error.
        with contextlib.suppress(Exception):
            await client.close_async()  # type: ignore[no-untyped-call]

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._close()

    async def _close(self) -> None:
        if self._client is not None:
            await self._close_client(self._client)
        self._client = None
        self._session = None

    @property
    def schema(self) -> GraphQLSchema:
        assert self._schema is not None, "use `async with MetadataClient(...)`"
        return self._schema

    async def execute(
        self, document: str, variables: dict[str, Any] | None = None, *, operation: str
    ) -> dict[str, Any]:
        if self._session is None:
            raise RuntimeError("use `async with MetadataClient(...)`")
        from gql import GraphQLRequest

        from bridge.twenty import introspection

        request = GraphQLRequest(document, variable_values=variables)
        invalid = introspection.document_errors(self.schema, request.document, document)
        if invalid:  # refused before it is sent: sending it again changes nothing
            raise FatalError(f"{operation} failed: {invalid[0]}")
        if document.lstrip().startswith("mutation"):
            self.mutations += 1
        session = self._session

        async def attempt() -> dict[str, Any] | Failure:
            if self._limiter is not None:
                await self._limiter.acquire()
            try:
                result = await session.execute(request, get_execution_result=True)
            except BridgeError:
                raise
            except Exception as exc:
                return self._failure(exc, operation)
            self._answered = True
            if result.errors:
                errors = [_as_dict(e) for e in result.errors]
                return self._classify(responses.from_errors(Api.METADATA, operation, errors))
            return dict(result.data or {})

        pause = self._limiter.pause if self._limiter is not None else None
        return await retry.call(attempt, self.retry, what=f"twenty metadata {operation}", pause=pause)

    def _classify(self, answer: Answer) -> Failure:
        return responses.classify(answer, throttle_floor=self._throttle_floor)

    def _failure(self, exc: Exception, operation: str) -> Failure:
        """What a gql exception says about Twenty's answer."""
        from gql.transport.exceptions import TransportConnectionFailed, TransportProtocolError, TransportServerError

        if isinstance(exc, TransportServerError):  # an HTTP error without a GraphQL body
            self._answered = True
            return self._classify(Answer(Api.METADATA, operation, status=exc.code or 0, graphql=False))
        if isinstance(exc, TransportConnectionFailed | httpx.TransportError | OSError):
            base = self.url.removesuffix("/metadata")
            answer = responses.from_network(Api.METADATA, operation, exc, first_contact=not self._answered, url=base)
            return self._classify(answer)
        errors = getattr(exc, "errors", None)
        if isinstance(errors, list) and errors:
            self._answered = True
            return self._classify(responses.from_errors(Api.METADATA, operation, [_as_dict(e) for e in errors]))
        if isinstance(exc, TransportProtocolError):  # 2xx, but not GraphQL
            self._answered = True
            return self._classify(Answer(Api.METADATA, operation, graphql=False))
        # Not Twenty's answer: a document gql refused against the schema, say. Sending it again
        # changes nothing.
        return Failure(Action.FATAL, FatalError(f"{operation} failed: {exc}"), row="no answer to read")

    # Operations ---------------------------------------------------------------------------

    async def list_objects(self) -> dict[str, LiveObject]:
        objects: dict[str, LiveObject] = {}
        after: str | None = None
        while True:
            data = await self.execute(docs.LIST_OBJECTS, {"after": after}, operation="list objects")
            conn = data["objects"]
            for edge in conn["edges"]:
                obj = LiveObject.from_node(edge["node"])
                objects[obj.name_singular] = obj
            info = conn["pageInfo"]
            if not info.get("hasNextPage") or not info.get("endCursor"):
                return objects
            after = info["endCursor"]

    async def create_object(self, spec: dict[str, Any]) -> dict[str, Any]:
        data = await self.execute(
            docs.CREATE_OBJECT, {"input": {"object": spec}}, operation=f"create object {spec['nameSingular']}"
        )
        return dict(data["createOneObject"])

    async def create_field(self, spec: dict[str, Any]) -> LiveField:
        data = await self.execute(
            docs.CREATE_FIELD, {"input": {"field": spec}}, operation=f"create field {spec['name']}"
        )
        return LiveField.from_node(data["createOneField"])

    async def update_label(self, field_id: str, label: str, description: str | None, *, name: str) -> None:
        """A field's label (and description); its name stays, so no record or query changes."""
        update: dict[str, Any] = {"label": label}
        if description is not None:
            update["description"] = description
        await self.execute(
            docs.UPDATE_FIELD, {"input": {"id": field_id, "update": update}}, operation=f"relabel {name}"
        )

    async def update_options(self, field_id: str, options: list[dict[str, Any]], *, name: str) -> None:
        await self.execute(
            docs.UPDATE_FIELD,
            {"input": {"id": field_id, "update": {"options": options}}},
            operation=f"add options to {name}",
        )

    async def list_views(self, object_id: str) -> list[LiveView]:
        """The object's views with their fields, Kanban columns and (2.x) sections."""
        data = await self.execute(
            docs.LIST_VIEWS[self.dialect], {"objectMetadataId": object_id}, operation="list views"
        )
        if self.dialect is Dialect.V2:
            return [_view_v2(node) for node in data.get("getViews") or []]
        views: list[LiveView] = []
        for node in data.get("getCoreViews") or []:
            fields = await self.execute(docs.LIST_VIEW_FIELDS_V1, {"viewId": node["id"]}, operation="list view fields")
            groups: list[dict[str, Any]] = []
            if node.get("type") == "KANBAN":
                answer = await self.execute(
                    docs.LIST_VIEW_GROUPS_V1, {"viewId": node["id"]}, operation="list view columns"
                )
                groups = sorted(answer.get("getCoreViewGroups") or [], key=lambda g: float(g.get("position") or 0))
            views.append(
                LiveView(
                    id=node["id"],
                    name=node["name"],
                    type=node["type"],
                    key=node.get("key"),
                    group_field_id=groups[0]["fieldMetadataId"] if groups else None,
                    fields=tuple(LiveViewField.from_node(f) for f in fields.get("getCoreViewFields") or []),
                    column_values=tuple(str(g["fieldValue"]) for g in groups),
                    last_column_position=_last_position(groups),
                    kanban_aggregate=node.get("kanbanAggregateOperation"),
                    kanban_aggregate_field_id=node.get("kanbanAggregateOperationFieldMetadataId"),
                )
            )
        return views

    async def create_view_fields(self, view_id: str, fields: list[NewViewField], *, name: str) -> None:
        """Show these fields in the view (2.x: one call; 1.x: one call per field)."""
        if not fields:
            return
        inputs: list[dict[str, Any]] = []
        for f in fields:
            one: dict[str, Any] = {
                "viewId": view_id,
                "fieldMetadataId": f.field_id,
                "isVisible": True,
                "position": f.position,
                "size": f.size or COLUMN_SIZE,
            }
            if f.group_id:
                one["viewFieldGroupId"] = f.group_id
            inputs.append(one)
        if self.dialect is Dialect.V2:
            await self.execute(docs.CREATE_VIEW_FIELDS_V2, {"inputs": inputs}, operation=f"add fields to {name}")
            return
        for one in inputs:
            await self.execute(docs.CREATE_VIEW_FIELD_V1, {"input": one}, operation=f"add a field to {name}")

    async def show_view_fields(self, fields: list[tuple[str, float]], *, name: str) -> None:
        """Make these view fields (id, new position) visible, one call each."""
        for view_field_id, position in fields:
            update = {"isVisible": True, "position": position, "size": COLUMN_SIZE}
            if self.dialect is Dialect.V2:
                document = docs.UPDATE_VIEW_FIELD
                variables: dict[str, Any] = {"input": {"id": view_field_id, "update": update}}
            else:
                document = docs.UPDATE_VIEW_FIELD_V1
                variables = {"id": view_field_id, "input": update}
            await self.execute(document, variables, operation=f"show a field in {name}")

    async def create_view_columns(
        self, view_id: str, group_field_id: str, values: list[tuple[str, float]], *, name: str
    ) -> None:
        """Add Kanban columns (view groups) for these option values at these positions."""
        if not values:
            return
        if self.dialect is Dialect.V2:
            inputs = [{"viewId": view_id, "fieldValue": v, "isVisible": True, "position": p} for v, p in values]
            await self.execute(docs.CREATE_VIEW_GROUPS_V2, {"inputs": inputs}, operation=f"add columns to {name}")
            return
        # 1.x: the server does not derive columns; each group names its SELECT field.
        for value, position in values:
            await self.execute(
                docs.CREATE_VIEW_GROUP_V1,
                {
                    "input": {
                        "viewId": view_id,
                        "fieldMetadataId": group_field_id,
                        "fieldValue": value,
                        "isVisible": True,
                        "position": position,
                    }
                },
                operation=f"create view column {value}",
            )

    @property
    def integer_positions(self) -> bool:
        """1.x core views keep a view field's position in an integer column (observed)."""
        return self.dialect is Dialect.V1

    # 2.x files a new field in its object's list hidden (2.21, observed), never shown.
    files_new_fields_shown = False

    @property
    def supports_record_page_sections(self) -> bool:
        mutations = self.schema.mutation_type.fields if self.schema.mutation_type else {}
        return "createViewFieldGroup" in mutations and self.supports_page_layouts

    @property
    def supports_page_layouts(self) -> bool:
        """Record-page tabs and dashboards (2.x page layouts)."""
        queries = self.schema.query_type.fields if self.schema.query_type else {}
        mutations = self.schema.mutation_type.fields if self.schema.mutation_type else {}
        return "getPageLayouts" in queries and "createPageLayoutWidget" in mutations

    def input_fields(self, type_name: str) -> set[str]:
        """The fields of one of the server's input types (empty when it has none by that name)."""
        found = self.schema.type_map.get(type_name)
        return set(getattr(found, "fields", {}) or {})

    async def page_layouts(self, *, object_id: str | None, layout_type: str) -> list[dict[str, Any]]:
        """The page layouts of this type (of this object), with their tabs and widgets (2.x)."""
        data = await self.execute(
            docs.LIST_PAGE_LAYOUTS,
            {"objectMetadataId": object_id, "pageLayoutType": layout_type},
            operation=f"list {layout_type.lower().replace('_', ' ')} layouts",
        )
        return list(data.get("getPageLayouts") or [])

    async def record_page_view_ids(self, object_id: str) -> list[str]:
        """The views behind the FIELDS widgets of the object's record page (2.x), in tab order:
        their field groups are the page's sections."""
        ids: list[str] = []
        for layout in await self.page_layouts(object_id=object_id, layout_type="RECORD_PAGE"):
            for tab in layout.get("tabs") or []:
                for widget in tab.get("widgets") or []:
                    view_id = (widget.get("configuration") or {}).get("viewId")
                    if widget.get("type") == "FIELDS" and view_id and view_id not in ids:
                        ids.append(str(view_id))
        return ids

    async def get_view(self, view_id: str) -> LiveView | None:
        """One view by id (2.x), e.g. a record page's, which the object's list may not include."""
        data = await self.execute(docs.GET_VIEW_V2, {"id": view_id}, operation="read a view")
        node = data.get("getView")
        return _view_v2(node) if node else None

    async def create_section(self, view_id: str, name: str, position: float) -> LiveFieldGroup:
        data = await self.execute(
            docs.CREATE_VIEW_FIELD_GROUP,
            {"input": {"viewId": view_id, "name": name, "position": position, "isVisible": True}},
            operation=f"create record page section {name}",
        )
        node = data["createViewFieldGroup"]
        return LiveFieldGroup(node["id"], node["name"], float(node.get("position") or 0))

    async def move_section(self, group_id: str, position: float, *, name: str) -> None:
        await self.execute(
            docs.UPDATE_VIEW_FIELD_GROUP,
            {"input": {"id": group_id, "update": {"position": position}}},
            operation=f"place record page section {name}",
        )

    async def set_kanban_aggregate(self, view_id: str, operation: str, field_id: str, *, name: str) -> None:
        """What a Kanban's column headers show (e.g. the SUM of a currency field)."""
        data = {"kanbanAggregateOperation": operation, "kanbanAggregateOperationFieldMetadataId": field_id}
        await self.execute(
            docs.UPDATE_VIEW[self.dialect], {"id": view_id, "input": data}, operation=f"set the column sums of {name}"
        )

    async def show_view_field(self, view_field_id: str, position: float, *, name: str, size: int) -> None:
        """Show a column Twenty made hidden, at this position and width."""
        await self._update_view_field(
            view_field_id, {"isVisible": True, "position": position, "size": size}, f"show {name}"
        )

    async def resize_view_field(self, view_field_id: str, size: int, *, name: str) -> None:
        await self._update_view_field(view_field_id, {"size": size}, f"widen {name}")

    async def _update_view_field(self, view_field_id: str, update: dict[str, Any], operation: str) -> None:
        if self.dialect is Dialect.V1:
            await self.execute(docs.UPDATE_VIEW_FIELD_V1, {"id": view_field_id, "input": update}, operation=operation)
            return
        await self.execute(
            docs.UPDATE_VIEW_FIELD, {"input": {"id": view_field_id, "update": update}}, operation=operation
        )

    async def move_view_field(self, view_field_id: str, group_id: str, position: float, *, name: str) -> None:
        await self.execute(
            docs.UPDATE_VIEW_FIELD,
            {"input": {"id": view_field_id, "update": {"viewFieldGroupId": group_id, "position": position}}},
            operation=f"move {name} into its section",
        )

    async def create_kanban_view(
        self, *, object_id: str, name: str, icon: str, group_field_id: str, group_values: list[str]
    ) -> dict[str, Any]:
        base = {"name": name, "objectMetadataId": object_id, "type": "KANBAN", "icon": icon}
        if self.dialect is Dialect.V2:
            data = await self.execute(
                docs.CREATE_VIEW[Dialect.V2],
                {"input": {**base, "mainGroupByFieldMetadataId": group_field_id, "visibility": "WORKSPACE"}},
                operation=f"create view {name}",
            )
            return dict(data["createView"])
        # 1.x: the server does not derive columns; create one view group per option.
        data = await self.execute(docs.CREATE_VIEW[Dialect.V1], {"input": base}, operation=f"create view {name}")
        view = dict(data["createCoreView"])
        await self.create_view_columns(
            view["id"], group_field_id, [(v, float(p)) for p, v in enumerate(group_values)], name=name
        )
        return view

    @property
    def supports_navigation_links(self) -> bool:
        return "createNavigationMenuItem" in self.schema.mutation_type.fields if self.schema.mutation_type else False

    async def list_navigation_links(self) -> list[dict[str, Any]]:
        data = await self.execute(docs.LIST_NAVIGATION_ITEMS, operation="list sidebar items")
        return [item for item in data["navigationMenuItems"] if item.get("type") == "LINK"]

    async def create_navigation_link(self, *, name: str, url: str, icon: str) -> dict[str, Any]:
        data = await self.execute(
            docs.CREATE_NAVIGATION_ITEM,
            {"input": {"type": "LINK", "name": name, "link": url, "icon": icon}},
            operation=f"add sidebar link {name}",
        )
        return dict(data["createNavigationMenuItem"])


def _view_v2(node: dict[str, Any]) -> LiveView:
    groups = sorted(node.get("viewGroups") or [], key=lambda g: float(g.get("position") or 0))
    return LiveView(
        id=node["id"],
        name=node["name"],
        type=node["type"],
        key=node.get("key"),
        group_field_id=node.get("mainGroupByFieldMetadataId"),
        fields=tuple(LiveViewField.from_node(f) for f in node.get("viewFields") or []),
        column_values=tuple(str(g["fieldValue"]) for g in groups),
        last_column_position=_last_position(groups),
        field_groups=tuple(
            LiveFieldGroup(g["id"], g["name"], float(g.get("position") or 0)) for g in node.get("viewFieldGroups") or []
        ),
        kanban_aggregate=node.get("kanbanAggregateOperation"),
        kanban_aggregate_field_id=node.get("kanbanAggregateOperationFieldMetadataId"),
    )


def _last_position(nodes: list[dict[str, Any]]) -> float:
    return max((float(n.get("position") or 0) for n in nodes), default=-1.0)


def detect_dialect(schema: GraphQLSchema) -> Dialect:
    mutations = schema.mutation_type.fields if schema.mutation_type else {}
    if "createView" in mutations:
        return Dialect.V2
    if "createCoreView" in mutations:
        return Dialect.V1
    raise FatalError("this server's metadata API has neither createView nor createCoreView; is it Twenty?")


def _as_dict(error: Any) -> dict[str, Any]:
    if isinstance(error, dict):
        return error
    formatted = getattr(error, "formatted", None)
    return dict(formatted) if formatted else {"message": str(error)}
