"""One record per socket operation: its name, argument model, handler, whether it is read-only,
which arguments its audit line may show, and which exceptions of its handler mean which error
code. Engine and domain declare theirs the same way, with @op on a method of the class that holds
what the handler needs; ControlServer serves a list of them and treats every one alike.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from pydantic import BaseModel

from addicted_jobs.control.protocol import ErrorCode


@dataclass(frozen=True)
class Peer:
    """The process at the other end of a connection (SO_PEERCRED); None where unknown."""

    pid: int | None
    uid: int | None
    gid: int | None


# A handler gets the validated argument model and the requesting peer, and answers a JSON object.
Handler = Callable[[Any, Peer], Awaitable[dict[str, Any]]]
F = TypeVar("F", bound=Callable[..., Awaitable[dict[str, Any]]])
_MARK = "__control_op__"


@dataclass(frozen=True)
class Fault:
    """What a domain exception means to a client: an error code, and text put before its message
    (the exception's own text follows)."""

    code: ErrorCode
    prefix: str = ""


@dataclass(frozen=True)
class Op:
    """A socket operation. `args`: its arguments' model (extra fields forbidden), checked by the
    server before `handler` runs. `read_only`: no audit line. `audit`: the argument keys its
    audit line may show (ids, names, counts; never secrets or paths); none unless listed.
    `errors`: exception type -> Fault, the first isinstance match wins (list subclasses first)."""

    name: str
    args: type[BaseModel]
    handler: Handler
    read_only: bool = False
    audit: frozenset[str] = frozenset()
    errors: Mapping[type[Exception], Fault] = field(default_factory=dict)

    def fault_of(self, exc: Exception) -> Fault | None:
        """The Fault declared for `exc`, or None when it is not one of this op's domain errors."""
        for kind, fault in self.errors.items():
            if isinstance(exc, kind):
                return fault
        return None


def op(
    name: str,
    args: type[BaseModel],
    *,
    read_only: bool = False,
    audit: Iterable[str] = (),
    errors: Mapping[type[Exception], Fault] | None = None,
) -> Callable[[F], F]:
    """Declare the decorated method `async def handler(self, args: Model, peer: Peer) -> dict`
    as the operation `name`; declared(cls) lists it, bind(obj) serves it with obj as self."""

    def mark(method: F) -> F:
        record = Op(name, args, method, read_only, frozenset(audit), dict(errors or {}))
        setattr(method, _MARK, record)
        return method

    return mark


def declared(cls: type) -> list[Op]:
    """The operations `cls` declares with @op, handlers unbound (for listing and tests)."""
    found: list[Op] = []
    for attr in dir(cls):
        record = getattr(getattr(cls, attr, None), _MARK, None)
        if isinstance(record, Op):
            found.append(record)
    return sorted(found, key=lambda o: o.name)


def bind(owner: object) -> list[Op]:
    """The operations `owner`'s class declares, each handler bound to `owner`."""
    out = []
    for record in declared(type(owner)):
        handler = getattr(owner, record.handler.__name__)
        out.append(replace(record, handler=handler))
    return out
