"""The bodies of the `credentials-add|list|remove` socket operations on Addic7ed credentials.
Cookies are secrets: no answer ever carries one in full.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
from pydantic import BaseModel, ConfigDict, Field

from addicted_jobs.catalog.credentials import CredentialPool
from addicted_jobs.control.op import Fault, Peer, op
from addicted_jobs.control.protocol import NoArgs

MAX_COOKIE_CHARS = 8192


class CredentialNotFound(LookupError):
    def __init__(self, credential_id: int) -> None:
        self.credential_id = credential_id
        super().__init__(f"no credential with id {credential_id}")


def mask_cookie(cookie: str) -> str:
    """Enough to tell two cookies apart, never enough to use one: 'wikisu…(48 chars)'."""
    shown = cookie[: min(6, len(cookie) // 3)]
    return f"{shown}…({len(cookie)} chars)"


def _check_cookie(cookie: object) -> str:
    if not isinstance(cookie, str):
        raise ValueError("the cookie must be a string")
    cookie = cookie.strip()
    if not cookie:
        raise ValueError("the cookie is empty: give the Cookie header value of a logged-in session")
    if len(cookie) > MAX_COOKIE_CHARS:
        raise ValueError(f"the cookie is longer than {MAX_COOKIE_CHARS} characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in cookie):
        # It is sent as an HTTP header value: a newline there would split the request.
        raise ValueError("the cookie contains control characters (a newline?)")
    return cookie


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


async def credentials_add(pool: asyncpg.Pool, cookie: str) -> dict[str, Any]:
    """Store a session cookie (ValueError when unusable); a known cookie is left as it is."""
    credential_id, created = await CredentialPool(pool).add(_check_cookie(cookie))
    return {"id": credential_id, "created": created, "cookie": mask_cookie(cookie.strip())}


async def credentials_list(pool: asyncpg.Pool) -> dict[str, Any]:
    credentials = await CredentialPool(pool).all_credentials()
    return {
        "credentials": [
            {
                "id": c.id,
                "cookie": mask_cookie(c.cookie),
                "usage": c.usage,
                "download_usage": c.download_usage,
                "exceeded_since": _when(c.download_exceeded_date),
                "last_used": _when(c.last_usage),
            }
            for c in credentials
        ]
    }


async def credentials_remove(pool: asyncpg.Pool, credential_id: int) -> dict[str, Any]:
    """Delete a credential (CredentialNotFound when there is none); a pending check of it then
    finds nothing and ends quietly."""
    if isinstance(credential_id, bool) or not isinstance(credential_id, int):
        raise ValueError("the credential id must be an integer")
    if not await CredentialPool(pool).remove(credential_id):
        raise CredentialNotFound(credential_id)
    return {"id": credential_id, "removed": True}


class CookieArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)
    cookie: str = Field(min_length=1)


class CredentialIdArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)
    id: int = Field(ge=1, le=2**31 - 1)  # addicted_user_credentials.id is an int


class CredentialOps:
    """`credentials-add`, `-list` and `-remove` on the credentials in `pool`'s database."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @op("credentials-add", CookieArgs, errors={ValueError: Fault("invalid_args")})
    async def add(self, args: CookieArgs, peer: Peer) -> dict[str, Any]:
        return await credentials_add(self.pool, args.cookie)

    @op("credentials-list", NoArgs, read_only=True)
    async def listing(self, args: NoArgs, peer: Peer) -> dict[str, Any]:
        return await credentials_list(self.pool)

    @op(
        "credentials-remove",
        CredentialIdArgs,
        audit=("id",),
        errors={CredentialNotFound: Fault("not_found")},
    )
    async def remove(self, args: CredentialIdArgs, peer: Peer) -> dict[str, Any]:
        return await credentials_remove(self.pool, args.id)
