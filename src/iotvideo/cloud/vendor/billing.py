"""Billing: DescribeAccountBalance, DescribeRechargeRecords.

A self-hosted cloud charges nothing, so there is no balance to run out. A vendor's back
office written for the reference platform may still read one, e.g. to check for funds
before CreateStorageService. Every instance gives the same answer:
- the balance is :data:`BALANCE` (the largest 32-bit value, in fen), so that a check for
  funds passes;
- the state is 1 (normal);
- LastUpdateTime is when the vendor was created;
- there are no recharge records.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field
from sqlalchemy import select

from iotvideo.cloud.db.tables import vendors
from iotvideo.cloud.vendor import params
from iotvideo.cloud.vendor.api import ActionContext, VendorApi
from iotvideo.cloud.vendor.params import Params

__all__ = ["BALANCE", "register"]

#: The balance every account reports (fen): nothing is ever charged here.
BALANCE = (1 << 31) - 1
#: The reference's account types: 1 device access, 2 cloud storage.
Account = Literal[1, 2]


class BalanceParams(Params):
    AccountType: Account


class RechargeRecordsParams(Params):
    AccountType: Account
    Offset: params.Offset = 0
    Limit: Annotated[int, Field(ge=1, le=100)] = 50


async def describe_account_balance(ctx: ActionContext, p: BalanceParams) -> dict[str, Any]:
    created = await ctx.conn.scalar(
        select(vendors.c.created_at).where(vendors.c.vendor_id == ctx.vendor_id)
    )
    return {
        "AccountType": p.AccountType,
        "Balance": BALANCE,
        "State": 1,
        "LastUpdateTime": int(created or 0),
    }


async def describe_recharge_records(
    _ctx: ActionContext, p: RechargeRecordsParams
) -> dict[str, Any]:
    return {"AccountType": p.AccountType, "Records": []}


def register(api: VendorApi) -> None:
    api.add("DescribeAccountBalance", BalanceParams, describe_account_balance, writes=False)
    api.add(
        "DescribeRechargeRecords", RechargeRecordsParams, describe_recharge_records, writes=False
    )
