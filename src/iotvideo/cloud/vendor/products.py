"""Products: CreateProduct, DescribeProduct, DescribeProducts, ModifyProduct, DeleteProduct;
DescribeOsList (what the device SDK runs on)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field
from sqlalchemy import delete, func, insert, select, update

from iotvideo.cloud import ids
from iotvideo.cloud.db.tables import AnyRow, devices, products
from iotvideo.cloud.vendor.api import ActionContext, VendorApi
from iotvideo.cloud.vendor.errors import Code, VendorError
from iotvideo.cloud.vendor.params import (
    PRINTABLE,
    Count,
    Id,
    Offset,
    Params,
    Short,
    Timestamp,
)

__all__ = ["register"]

# The reference platform's rules: names of CJK, letters, digits and "_" up to 32 characters;
# descriptions up to 128 characters without quotes, backslash, "_", "%", "#", "$" or
# control characters.
ProductName = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[\w\u4e00-\u9fff]+$")]
Description = Annotated[str, Field(max_length=128, pattern=r"^[^'\"\\_%#$\x00-\x1f]*$")]
Region = Literal[
    "China-Mainland",
    "China-Hong Kong, Macao and Taiwan",
    "America",
    "Europe",
    "India",
    "Other-Overseas",
]
Feature = Annotated[str, Field(min_length=1, max_length=32), PRINTABLE]


class CreateProductParams(Params):
    ProductModel: Annotated[str, Field(min_length=1, max_length=64), PRINTABLE]
    ProductName: ProductName
    ProductDescription: Description
    Features: Annotated[list[Feature], Field(max_length=16, default_factory=list)]
    ChipManufactureId: Short = ""
    ChipId: Short = ""
    ProductRegion: Region | None = None
    ProductCate: Annotated[int, Field(ge=0, le=1)] = 0
    AccessMode: Annotated[int, Field(ge=0, le=(1 << 31) - 1)] = 0
    Os: Annotated[str, Field(max_length=32), PRINTABLE] = ""
    ChipArch: Annotated[str, Field(max_length=32), PRINTABLE] = ""


class ProductIdParams(Params):
    ProductId: Id


# (Fields named as their types: a default of None would shadow the type's name.)
NewName = ProductName | None
NewDescription = Description | None


class ModifyProductParams(Params):
    ProductId: Id
    ProductName: NewName = None
    ProductDescription: NewDescription = None
    ChipManufactureId: Short | None = None
    ChipId: Short | None = None


class NoParams(Params):
    pass


#: DescribeOsList: where the device SDK runs. It is Python on Linux, on any chip a
#: CPython 3.11+ and FFmpeg run on; these are the machines it is tested and packaged for.
#: The reference lists chip vendors' SDKs per OS; there is no Android or LiteOS build.
OS_LIST: dict[str, list[dict[str, str]]] = {
    "Android": [],
    "Linux": [
        {"ChipManufacture": "generic", "ChipId": chip} for chip in ("x86_64", "aarch64", "armv7l")
    ],
    "LiteOs": [],
}


class DescribeProductsParams(Params):
    Limit: Count
    Offset: Offset
    ProductModel: Short | None = None
    StartTime: Timestamp | None = None
    EndTime: Timestamp | None = None


def product_base(p: AnyRow) -> dict[str, Any]:
    return {
        "ProductId": p.product_id,
        "ProductModel": p.product_model,
        "ProductName": p.product_name,
        "ProductDescription": p.description,
        "CreateTime": p.created_at,
        "IotModelRevision": p.iot_model_revision,
        "SecretKey": p.secret_key,
        "FuncCode": list(p.features),
        "ProductCate": p.cate,
        "ProductRegion": p.region,
    }


def product_data(p: AnyRow) -> dict[str, Any]:
    return {
        "ProductId": p.product_id,
        "ProductName": p.product_name,
        "ProductDescription": p.description,
        "CreateTime": p.created_at,
        "IotModelRevision": p.iot_model_revision,
        "SecretKey": p.secret_key,
        "Features": list(p.features),
        "ProductModel": p.product_model,
        "ChipManufactureId": p.chip_manufacture_id,
        "ChipId": p.chip_id,
        "ProductCate": p.cate,
        "ProductRegion": p.region,
        "AccessMode": p.access_mode,
        "Os": p.os,
    }


async def create_product(ctx: ActionContext, p: CreateProductParams) -> dict[str, Any]:
    values = {
        "product_id": ids.product_id(),
        "vendor_id": ctx.vendor_id,
        "product_model": p.ProductModel,
        "product_name": p.ProductName,
        "description": p.ProductDescription,
        "features": list(dict.fromkeys(p.Features)),
        "chip_manufacture_id": p.ChipManufactureId,
        "chip_id": p.ChipId,
        "region": p.ProductRegion or "China-Mainland",
        "cate": p.ProductCate,
        "access_mode": p.AccessMode,
        "os": p.Os,
        "chip_arch": p.ChipArch,
        "secret_key": ids.secret_key(),
        "iot_model_revision": 0,
        "device_seq": 0,
        "created_at": ctx.now,
        "created_ms": ctx.now_ms,
    }
    row = (await ctx.conn.execute(insert(products).values(values).returning(products))).one()
    return {"Data": product_base(row)}


async def describe_product(ctx: ActionContext, p: ProductIdParams) -> dict[str, Any]:
    return {"Data": product_data(await ctx.product(p.ProductId))}


async def describe_products(ctx: ActionContext, p: DescribeProductsParams) -> dict[str, Any]:
    where = [products.c.vendor_id == ctx.vendor_id]
    if p.ProductModel:
        where.append(products.c.product_model == p.ProductModel)
    if p.StartTime is not None:
        where.append(products.c.created_at >= p.StartTime)
    if p.EndTime is not None:
        where.append(products.c.created_at <= p.EndTime)
    total = await ctx.conn.scalar(select(func.count()).select_from(products).where(*where))
    rows = await ctx.conn.execute(
        select(products)
        .where(*where)
        .order_by(products.c.created_ms, products.c.product_id)
        .limit(p.Limit)
        .offset(p.Offset)
    )
    return {"Data": [product_data(r) for r in rows], "TotalCount": total or 0}


async def modify_product(ctx: ActionContext, p: ModifyProductParams) -> dict[str, Any]:
    """Change the fields given; the others stay."""
    product = await ctx.product(p.ProductId)
    changes = {
        column: value
        for column, value in (
            ("product_name", p.ProductName),
            ("description", p.ProductDescription),
            ("chip_manufacture_id", p.ChipManufactureId),
            ("chip_id", p.ChipId),
        )
        if value is not None
    }
    if changes:
        await ctx.conn.execute(
            update(products).where(products.c.product_id == product.product_id).values(changes)
        )
    return {}


async def describe_os_list(_ctx: ActionContext, _p: NoParams) -> dict[str, Any]:
    return {"Data": OS_LIST}


async def delete_product(ctx: ActionContext, p: ProductIdParams) -> dict[str, Any]:
    product = await ctx.product(p.ProductId)
    count = await ctx.conn.scalar(
        select(func.count()).select_from(devices).where(devices.c.product_id == product.product_id)
    )
    if count:
        raise VendorError(
            Code.RESOURCE_IN_USE,
            f"Product {product.product_id!r} still has {count} device(s); "
            "delete them first (DeleteDevice).",
        )
    await ctx.conn.execute(delete(products).where(products.c.product_id == product.product_id))
    return {}


def register(api: VendorApi) -> None:
    api.add("CreateProduct", CreateProductParams, create_product)
    api.add("DescribeProduct", ProductIdParams, describe_product, writes=False)
    api.add("DescribeProducts", DescribeProductsParams, describe_products, writes=False)
    api.add("ModifyProduct", ModifyProductParams, modify_product)
    api.add("DeleteProduct", ProductIdParams, delete_product)
    api.add("DescribeOsList", NoParams, describe_os_list, writes=False)
