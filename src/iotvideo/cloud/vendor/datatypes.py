"""Custom data types: CreateIotDataType, DescribeIotDataType, DeleteIotDataType.

A vendor's custom type is a struct that its thing models may name as a type, in the
reference's form::

    {"id": "Position", "name": "PTZ position",
     "type": [{"id": "pan", "name": "Pan", "type": "int32"},
              {"id": "zoom", "name": "Zoom", "type": [{"id": "level", "type": "uint32"}]}]}

A member's ``type`` is one of the model's own types (``int32``, ``uint32``, ``float32``,
``float64``, ``bool``, ``stringN``, ``json``; the reference's ``float``, ``double`` and
``string`` are read as ``float32``, ``float64`` and ``string64``) or a list of members (a
nested struct). A model that names a custom type (``{"type": "Position"}``) gets it
expanded into the struct when CreateIotModel or RunIotModel stores the model, so a
published model stands on its own: deleting or changing a type later changes no model.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from pydantic import Field
from sqlalchemy import delete, func, insert, select

from iotvideo.cloud.db.tables import iot_data_types
from iotvideo.cloud.vendor.api import ActionContext, VendorApi
from iotvideo.cloud.vendor.errors import Code, VendorError, not_found
from iotvideo.cloud.vendor.params import Params
from iotvideo.protocol.thingmodel import Definition

__all__ = ["MAX_TYPES", "expand_custom_types", "register", "struct_of"]

#: Custom types one vendor may keep.
MAX_TYPES = 100
MAX_MEMBERS = 64
_ALIASES = {"float": "float32", "double": "float64", "string": "string64"}
_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{0,31}$"
_BUILT_IN = {"int32", "uint32", "float32", "float64", "bool", "struct", "json"}

TypeId = Annotated[str, Field(min_length=1, max_length=32, pattern=_PATTERN)]


class CreateIotDataTypeParams(Params):
    IotDataType: Annotated[str, Field(min_length=2, max_length=16 * 1024)]


class DescribeIotDataTypeParams(Params):
    #: Empty or absent: every type of the vendor.
    TypeId: Annotated[str, Field(max_length=32)] = ""


class DeleteIotDataTypeParams(Params):
    TypeId: TypeId


def _members(raw: Any, where: str, depth: int = 0) -> dict[str, Any]:
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_MEMBERS:
        raise ValueError(f"{where}: 'type' is a list of 1 to {MAX_MEMBERS} members")
    if depth > 4:
        raise ValueError(f"{where}: members nest at most 4 deep")
    fields: dict[str, Any] = {}
    for i, member in enumerate(raw):
        if not isinstance(member, dict) or not isinstance(member.get("id"), str):
            raise ValueError(f"{where}[{i}]: a member is an object with a string 'id'")
        name = member["id"]
        if name in fields:
            raise ValueError(f"{where}: the member id {name!r} appears twice")
        kind = member.get("type")
        if isinstance(kind, list):
            fields[name] = {
                "type": "struct",
                "fields": _members(kind, f"{where}.{name}", depth + 1),
            }
        elif isinstance(kind, str):
            fields[name] = {"type": _ALIASES.get(kind, kind)}
        else:
            raise ValueError(f"{where}.{name}: 'type' is a type name or a list of members")
    return fields


def struct_of(doc: Any) -> tuple[str, dict[str, Any]]:
    """A custom type's id and its struct in the model's own form; ValueError if invalid."""
    if not isinstance(doc, dict) or not isinstance(doc.get("id"), str):
        raise ValueError("a custom type is an object with a string 'id'")
    type_id = doc["id"]
    if not re.match(_PATTERN, type_id):
        raise ValueError("'id' is a letter, then up to 31 letters, digits or '_'")
    if not isinstance(doc.get("name", ""), str) or len(doc.get("name", "")) > 64:
        raise ValueError("'name' is a text of at most 64 characters")
    spec = {"type": "struct", "fields": _members(doc.get("type"), type_id)}
    Definition.parse(spec, type_id)  # the member names and types, as a model checks them
    return type_id, spec


async def _types(ctx: ActionContext) -> dict[str, dict[str, Any]]:
    rows = await ctx.conn.execute(
        select(iot_data_types.c.type_id, iot_data_types.c.source).where(
            iot_data_types.c.vendor_id == ctx.vendor_id
        )
    )
    return {row.type_id: struct_of(json.loads(row.source))[1] for row in rows}


async def expand_custom_types(ctx: ActionContext, model_text: str) -> str:
    """``model_text`` with every custom type it names replaced by that type's struct (the
    text unchanged when it is not JSON: the model's own check says why)."""
    try:
        model = json.loads(model_text)
    except (ValueError, RecursionError):
        return model_text
    if not isinstance(model, dict):
        return model_text
    types: dict[str, dict[str, Any]] | None = None

    async def expand(spec: Any) -> Any:
        nonlocal types
        kind = spec if isinstance(spec, str) else None
        if isinstance(spec, dict):
            kind = spec.get("type")
        if isinstance(spec, dict) and isinstance(spec.get("fields"), dict):
            spec = {**spec, "fields": {k: await expand(v) for k, v in spec["fields"].items()}}
        if not isinstance(kind, str) or kind in _BUILT_IN or kind.startswith("string"):
            return spec
        if types is None:
            types = await _types(ctx)
        if kind not in types:
            return spec  # the model's check names the unknown type
        extra = {}
        if isinstance(spec, dict):  # a default, say, stays
            extra = {k: v for k, v in spec.items() if k not in ("type", "fields")}
        return {**types[kind], **extra}

    for section, objects in model.items():
        if isinstance(objects, dict):
            model[section] = {name: await expand(spec) for name, spec in objects.items()}
    return json.dumps(model, ensure_ascii=False)


async def create_iot_data_type(ctx: ActionContext, p: CreateIotDataTypeParams) -> dict[str, Any]:
    try:
        doc = json.loads(p.IotDataType)
        type_id, _spec = struct_of(doc)
    except (ValueError, RecursionError) as exc:
        raise VendorError(Code.INVALID_PARAMETER_VALUE, f"IotDataType: {exc}") from None
    source = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    existing = await ctx.conn.scalar(
        select(iot_data_types.c.source).where(
            iot_data_types.c.vendor_id == ctx.vendor_id, iot_data_types.c.type_id == type_id
        )
    )
    if existing is not None:
        if existing == source:
            return {}  # the same type again: nothing to do
        raise VendorError(
            Code.RESOURCE_IN_USE,
            f"The custom type {type_id!r} exists with another definition; delete it first.",
        )
    count = await ctx.conn.scalar(
        select(func.count()).where(iot_data_types.c.vendor_id == ctx.vendor_id)
    )
    if (count or 0) >= MAX_TYPES:
        raise VendorError(Code.LIMIT_EXCEEDED, f"A vendor keeps at most {MAX_TYPES} custom types.")
    await ctx.conn.execute(
        insert(iot_data_types).values(
            vendor_id=ctx.vendor_id, type_id=type_id, source=source, created_at=ctx.now
        )
    )
    return {}


async def describe_iot_data_type(
    ctx: ActionContext, p: DescribeIotDataTypeParams
) -> dict[str, Any]:
    query = select(iot_data_types.c.source).where(iot_data_types.c.vendor_id == ctx.vendor_id)
    if p.TypeId:
        query = query.where(iot_data_types.c.type_id == p.TypeId)
    found = list(await ctx.conn.scalars(query.order_by(iot_data_types.c.type_id)))
    if p.TypeId and not found:
        raise not_found("TypeId", p.TypeId)
    return {"Data": found}


async def delete_iot_data_type(ctx: ActionContext, p: DeleteIotDataTypeParams) -> dict[str, Any]:
    done = await ctx.conn.execute(
        delete(iot_data_types).where(
            iot_data_types.c.vendor_id == ctx.vendor_id, iot_data_types.c.type_id == p.TypeId
        )
    )
    if done.rowcount == 0:
        raise not_found("TypeId", p.TypeId)
    return {}


def register(api: VendorApi) -> None:
    api.add("CreateIotDataType", CreateIotDataTypeParams, create_iot_data_type)
    api.add("DescribeIotDataType", DescribeIotDataTypeParams, describe_iot_data_type, writes=False)
    api.add("DeleteIotDataType", DeleteIotDataTypeParams, delete_iot_data_type)
