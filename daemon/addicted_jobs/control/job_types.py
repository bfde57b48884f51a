"""What `addicted-jobs job-types` shows of each registered job: queue, argument signature, unique
key and TTL, retry policy, timeout, per-type cap and keyed lock, as JSON-ready dicts.

Key and lock functions are code (usually a lambda); they are shown as templates by calling them
on a probe whose attributes render as `{field}`, so `lambda a: f"{a.show_id}-{a.season}"` reads
`{show_id}-{season}`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from addicted_jobs.jobs import JobSpec


class _Field:
    def __init__(self, name: str) -> None:
        self.name = name

    def __str__(self) -> str:
        return "{" + self.name + "}"

    def __format__(self, spec: str) -> str:
        return str(self)


class _Probe:
    def __getattr__(self, name: str) -> _Field:
        return _Field(name)


def key_template(function: Callable[[Any], Any] | None) -> str | None:
    """The key a unique-key or lock function builds, with argument fields as {name}; None when
    there is no function, "(computed)" when it does more than read fields."""
    if function is None:
        return None
    try:
        return str(function(_Probe()))
    except Exception:  # arithmetic or method calls on a field: not a plain template
        return "(computed)"


def signature(model: type[BaseModel]) -> list[dict[str, Any]]:
    """Each argument: name, type, required, default (JSON-ready)."""
    out = []
    for name, info in model.model_fields.items():
        kind = getattr(info.annotation, "__name__", None) or str(info.annotation)
        entry: dict[str, Any] = {"name": name, "type": kind, "required": info.is_required()}
        if not info.is_required():
            entry["default"] = info.get_default(call_default_factory=True)
        out.append(entry)
    return out


def describe(spec: JobSpec[Any]) -> dict[str, Any]:
    """One job type as `job-types` lists it; durations in seconds."""
    retry = spec.retry
    return {
        "name": spec.name,
        "queue": spec.queue,
        "args": signature(spec.args_model),
        "unique_key": key_template(spec.unique_key),
        "unique_ttl_s": spec.unique_ttl if spec.unique_key else None,
        "retries": retry.retries,
        "retry_delays_s": list(retry.delays) if retry.delays is not None else "hangfire formula",
        "on_exhausted": retry.on_exhausted,
        "timeout_s": spec.timeout,
        "cap": spec.cap,
        "lock_key": key_template(spec.lock_key),
        "lock_mode": spec.lock_mode if spec.lock_key else None,
        "description": spec.description,
    }
