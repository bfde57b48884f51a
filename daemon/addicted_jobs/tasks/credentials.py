"""Download-credential jobs (spec 6): the hourly redeemer that queues a quota check for every
exceeded credential, and the check itself, which reads panel.php and clears the mark when allowed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from pydantic import BaseModel, ConfigDict, Field

from addicted_jobs.catalog.credentials import CredentialPool, OnExceeded
from addicted_jobs.jobs import JobContext, JobRequest, JobSpec, NoArgs, Registry, RetryPolicy
from addicted_jobs.settings import CREDENTIAL_CHECK_QUEUE

if TYPE_CHECKING:  # the records load with the first page parsed
    from addicted_jobs.upstream.models import DownloadUsage

log = structlog.get_logger(__name__)

REDEEM = "redeem_download_credentials"
RESET = "reset_download_credential"
RESET_CAP = 3
RESET_UNIQUE_TTL = 3600.0  # one check per credential per hour, however many releases ask
RESET_RETRY = RetryPolicy(retries=10, on_exhausted="delete")


class QuotaReader(Protocol):
    async def get_download_usage(self, cookie: str) -> DownloadUsage: ...


class CredentialResources(Protocol):
    @property
    def credentials(self) -> CredentialPool: ...

    @property
    def addic7ed(self) -> QuotaReader: ...


class CredentialArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)
    credential_id: int = Field(ge=1, le=2**31 - 1)  # addicted_user_credentials.id is an int


def credential_specs(resources: CredentialResources) -> list[JobSpec[Any]]:
    async def redeem(ctx: JobContext, _args: NoArgs) -> None:
        ids = await resources.credentials.exceeded_ids()
        if not ids:
            ctx.log.info("no exceeded download credentials")
            return
        # One statement for all; a check still pending from a release is kept, not doubled.
        results = await ctx.enqueue_many(
            [JobRequest(RESET, CredentialArgs(credential_id=i)) for i in ids]
        )
        ctx.log.info(
            "quota checks enqueued",
            exceeded=len(ids),
            created=sum(r.created for r in results),
        )

    async def reset(ctx: JobContext, args: CredentialArgs) -> None:
        credential = await resources.credentials.get(args.credential_id)
        if credential is None:
            ctx.log.error(
                "credential not found; nothing to check", credential_id=args.credential_id
            )
            return
        # A page that does not parse raises: the job retries, then is deleted (spec 6).
        usage = await resources.addic7ed.get_download_usage(credential.cookie)
        found = await resources.credentials.record_quota(
            credential.id, usage.used, usage.fully_used
        )
        fields = {"credential_id": credential.id, "used": usage.used, "total": usage.total}
        if not found:
            ctx.log.warning("credential removed while it was checked", **fields)
        elif usage.fully_used:
            ctx.log.info("credential fully used for today; it stays exceeded", **fields)
        else:
            ctx.log.info(
                "credential has download quota again", cleared=credential.exceeded, **fields
            )

    return [
        JobSpec(
            name=REDEEM,
            queue="default",
            args_model=NoArgs,
            handler=redeem,
            description="enqueue a quota check for every exceeded download credential",
        ),
        JobSpec(
            name=RESET,
            queue=CREDENTIAL_CHECK_QUEUE,
            args_model=CredentialArgs,
            handler=reset,
            unique_key=lambda a: str(a.credential_id),
            unique_ttl=RESET_UNIQUE_TTL,
            cap=RESET_CAP,
            retry=RESET_RETRY,
            description="read a credential's quota page; clear its exceeded mark when quota is left",
        ),
    ]


def register_credential_jobs(registry: Registry, resources: CredentialResources) -> None:
    for spec in credential_specs(resources):
        registry.register(spec)


def credential_check_hook(enqueue: Callable[..., Awaitable[Any]]) -> OnExceeded:
    """For CredentialPool.on_exceeded: releasing an exceeded credential queues its check.

    The unique key makes repeated releases within the hour one check. A failed enqueue is only
    logged: the release belongs to a download that must not fail for it, and the hourly redeemer
    queues the check anyway.
    """

    async def on_exceeded(credential_id: int) -> None:
        try:
            await enqueue(RESET, {"credential_id": credential_id})
        except Exception as exc:
            log.warning(
                "could not queue the quota check of an exceeded credential; the hourly "
                "redeemer will",
                credential_id=credential_id,
                error=f"{type(exc).__name__}: {exc}",
            )

    return on_exceeded
