"""Whop products → WhopProduct records (keyed `whopProductId`)."""

from __future__ import annotations

from collections.abc import Sequence

from bridge.sync.objects.base import SyncedObject
from bridge.sync.records import CompanyItems
from bridge.sync.writer import Item
from bridge.twenty.data import WHOP_PRODUCT
from bridge.whop.models import Product


async def build(items: CompanyItems, products: Sequence[Product]) -> list[Item]:
    return items.products(products)


PRODUCTS = SyncedObject[Product](
    kind="product",
    twenty=WHOP_PRODUCT,
    id_prefix="prod_",
    events=("product",),
    hint=Product,
    phase="products",
    select_fields=("visibility",),
    deleted=(("visibility", "DELETED"),),  # `product.deleted`: marked, never written back as live
    list_page=lambda whop: whop.list_products,
    get_one=lambda whop: whop.get_product,
    build=build,
)
