"""The `dashboard` records (Twenty 2.x data API) that list dashboards: each names its page
layout. Provisioning reads them for its own layouts (a deleted one, in the trash, stays
deleted) and creates the one its dashboard lacks."""

from __future__ import annotations

from bridge.twenty.data import ObjectApi, TwentyDataClient

DASHBOARD = ObjectApi("dashboard", "dashboards", "id", "id title pageLayoutId")

CREATE_DASHBOARD = """
mutation CreateDashboard($data: DashboardCreateInput!) {
  createDashboard(data: $data) { id title pageLayoutId }
}
"""


class DashboardRecordsApi:
    def __init__(self, data: TwentyDataClient) -> None:
        self.data = data

    async def by_layout(self, layout_ids: list[str]) -> dict[str, str]:
        ids = {"pageLayoutId": {"in": layout_ids}}
        found = dict.fromkeys((r["pageLayoutId"] for r in await self.data.find(DASHBOARD, ids)), "live")
        trashed = await self.data.find(DASHBOARD, {"and": [ids, {"deletedAt": {"is": "NOT_NULL"}}]})
        for record in trashed:
            found.setdefault(record["pageLayoutId"], "deleted")
        return found

    async def create(self, title: str, layout_id: str) -> None:
        await self.data.graphql(
            CREATE_DASHBOARD,
            {"data": {"title": title, "pageLayoutId": layout_id, "position": 0}},
            operation=f"list the dashboard {title}",
            write=True,
        )
