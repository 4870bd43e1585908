"""The one place plancache errors become gRPC status codes."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from plancache import errors
from plancache.logs import get_logger

log = get_logger("plancache.server")

# Most specific first: the first class an error is an instance of decides.
_CODES: list[tuple[type[Exception], grpc.StatusCode]] = [
    (errors.PermissionDeniedError, grpc.StatusCode.PERMISSION_DENIED),
    (errors.AuthError, grpc.StatusCode.UNAUTHENTICATED),
    (errors.ValidationError, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFoundError, grpc.StatusCode.NOT_FOUND),
    (errors.VersionConflictError, grpc.StatusCode.ABORTED),
    (errors.ConflictError, grpc.StatusCode.ALREADY_EXISTS),
    (errors.PlannerTimeout, grpc.StatusCode.DEADLINE_EXCEEDED),
    (errors.PlannerNotConfigured, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.PlannerError, grpc.StatusCode.UNAVAILABLE),
    (errors.StoreError, grpc.StatusCode.UNAVAILABLE),
    (errors.NotServedError, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.ConfigurationError, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.ExecutionTimeout, grpc.StatusCode.DEADLINE_EXCEEDED),
    (errors.ExecutionCancelled, grpc.StatusCode.CANCELLED),
    (errors.ExecutionError, grpc.StatusCode.ABORTED),
]


def status_for(exc: BaseException) -> grpc.StatusCode:
    for kind, code in _CODES:
        if isinstance(exc, kind):
            return code
    return grpc.StatusCode.INTERNAL


F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def translate_errors(handler: F) -> F:
    """Turn plancache errors raised by a unary handler into an aborted call."""

    @functools.wraps(handler)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await handler(self, request, context)
        except errors.PlancacheError as exc:
            code = status_for(exc)
            log.info("rpc_refused", rpc=handler.__name__, code=code.name, error=str(exc))
            await context.abort(code, str(exc))
        except Exception as exc:
            if isinstance(exc, grpc.aio.AbortError):
                raise
            log.exception("rpc_failed", rpc=handler.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}")

    return wrapper  # type: ignore[return-value]
