"""Who may call what: tokens, roles, tenants, and the interceptor that checks them.

A caller sends ``authorization: Bearer <token>``. A token stands for a
``Principal``: a role and, for tenant tokens, one tenant.

    role       may call
    admin      TemplateService, StatsService, PlanService
    agent      PlanService (Lookup, Execute, Feedback)
    operator   StatsService

``PLANCACHE_ADMIN_TOKEN`` is an admin and ``PLANCACHE_AGENT_TOKEN`` an agent of
every tenant. ``PLANCACHE_TENANT_TOKENS`` holds ``token=tenant:role`` pairs,
comma-separated, or names a file with one pair a line.

A service needs a token when its token is set (TemplateService and
StatsService: the admin token; PlanService: the agent token), and every
service does once tenant tokens are set, since an anonymous caller would see
every tenant. With no token set, nothing is checked (the local default).

``AuthInterceptor`` makes every check, before any servicer runs, so a
refused call changes nothing:

1. no token where one is needed: UNAUTHENTICATED; a token the server does
   not know: PERMISSION_DENIED;
2. a role that may not call the service: PERMISSION_DENIED;
3. a tenant token and a request naming another tenant's collection:
   NOT_FOUND, worded as for a missing collection, so one tenant cannot
   learn the names of another's collections.

The interceptor leaves the caller in a context variable for the call.
Servicers read it (``caller``, ``visible``, ``caller_tenant``) only to filter
lists (ListCollections, GetStats over all collections) and to give new
collections the caller's tenant. Health and reflection need no token.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hmac
import inspect
import os
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import structlog

from plancache._status import status_for
from plancache.cache import PlanCache, decode_handle
from plancache.config import Settings
from plancache.errors import (
    AuthError,
    ConfigurationError,
    NotFoundError,
    PermissionDeniedError,
    PlancacheError,
)
from plancache.logs import get_logger
from plancache.templates import Collection

__all__ = [
    "ROLES",
    "AuthInterceptor",
    "AuthPolicy",
    "Principal",
    "caller",
    "caller_tenant",
    "parse_tenant_tokens",
    "visible",
]

log = get_logger("plancache.auth")

ROLES = ("admin", "agent", "operator")
_SERVICE_ROLES: dict[str, tuple[str, ...]] = {
    "plancache.v1.PlanService": ("agent", "admin"),
    "plancache.v1.TemplateService": ("admin",),
    "plancache.v1.StatsService": ("admin", "operator"),
}
# Requests whose ``name`` field is a collection's name.
_NAMED_BY_NAME = ("GetCollectionRequest", "DeleteCollectionRequest")


@dataclass(frozen=True)
class Principal:
    """The caller a token stands for; ``tenant`` None means every tenant."""

    name: str
    role: str
    tenant: str | None = None


ANONYMOUS = Principal("anonymous", "")
_caller: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "plancache_caller", default=None
)


def caller() -> Principal | None:
    """The caller of the RPC being served; None outside one (tests, the sweeper)."""
    return _caller.get()


def caller_tenant() -> str | None:
    """The tenant the caller is confined to, or None when it sees every tenant."""
    principal = _caller.get()
    return principal.tenant if principal else None


def visible(collection: Collection) -> bool:
    """Whether the caller may see ``collection``."""
    tenant = caller_tenant()
    return tenant is None or collection.tenant == tenant


def _act_as(principal: Principal) -> None:
    # Each RPC runs in a task of its own, with its own copy of the context:
    # what is set here ends with the call and reaches no other call.
    _caller.set(principal)
    structlog.contextvars.bind_contextvars(actor=principal.name)


def parse_tenant_tokens(value: str) -> list[tuple[str, Principal]]:
    """``token=tenant:role`` pairs, comma-separated, or a file with one pair a line."""
    if os.path.isfile(value):
        with open(value, encoding="utf-8") as handle:
            items = [line.split("#", 1)[0].strip() for line in handle]
        where = value
    else:
        items = [item.strip() for item in value.split(",")]
        where = "PLANCACHE_TENANT_TOKENS"
    pairs: list[tuple[str, Principal]] = []
    for item in items:
        if not item:
            continue
        token, sep, grant = item.partition("=")
        tenant, colon, role = grant.partition(":")
        token, tenant, role = token.strip(), tenant.strip(), role.strip()
        if not (sep and colon and token and tenant):
            raise ConfigurationError(
                f"{where}: an entry is not token=tenant:role (e.g. s3cret=acme:agent); "
                "give pairs separated by commas, or the path of a file with one pair a line"
            )
        if role not in ROLES:
            raise ConfigurationError(f"{where}: role {role!r} of tenant {tenant!r} is not one of {', '.join(ROLES)}")
        pairs.append((token, Principal(f"{tenant}:{role}", role, tenant)))
    return pairs


@dataclass(frozen=True)
class AuthPolicy:
    """The configured tokens, and which services need one."""

    admin_token: str | None = None
    agent_token: str | None = None
    tenant_tokens: tuple[tuple[str, Principal], ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> AuthPolicy:
        tenants = tuple(parse_tenant_tokens(settings.tenant_tokens)) if settings.tenant_tokens else ()
        policy = cls(settings.admin_token or None, settings.agent_token or None, tenants)
        tokens = [token for token, _ in policy._tokens()]
        if len(tokens) != len(set(tokens)):
            raise ConfigurationError("the same token is configured twice; give each role and tenant its own")
        if policy.agent_token and not policy.admin_token and not policy.tenant_tokens:
            log.warning(
                "admin_rpcs_open",
                detail="PLANCACHE_AGENT_TOKEN is set but PLANCACHE_ADMIN_TOKEN is not: "
                "TemplateService and StatsService take calls without a token",
            )
        return policy

    @property
    def enabled(self) -> bool:
        return bool(self.admin_token or self.agent_token or self.tenant_tokens)

    def guarded(self, service: str) -> bool:
        """Whether calls of ``service`` need a token."""
        if self.tenant_tokens:
            return True
        if service == "plancache.v1.PlanService":
            return bool(self.agent_token)
        return bool(self.admin_token)

    def _tokens(self) -> list[tuple[str, Principal]]:
        tokens = list(self.tenant_tokens)
        if self.admin_token:
            tokens.append((self.admin_token, Principal("admin", "admin")))
        if self.agent_token:
            tokens.append((self.agent_token, Principal("agent", "agent")))
        return tokens

    def match(self, token: str) -> Principal | None:
        """The principal of ``token``; every token is compared, in constant time each."""
        found = None
        for candidate, principal in self._tokens():
            if hmac.compare_digest(candidate.encode(), token.encode()):
                found = principal
        return found

    def authenticate(self, metadata: Sequence[tuple[str, Any]] | None, service: str) -> Principal:
        """The caller of a call of ``service``: AuthError when a token is missing or unknown."""
        if not self.enabled:
            return ANONYMOUS
        token = _bearer(metadata or ())
        if token is None:
            if self.guarded(service):
                raise AuthError(
                    f"{service} needs a token: send 'authorization: Bearer <token>' "
                    "(plancache --token or PLANCACHE_TOKEN)"
                )
            return ANONYMOUS
        principal = self.match(token)
        if principal is None:
            raise PermissionDeniedError("the token is not valid on this server")
        return principal

    def authorize(self, principal: Principal, service: str) -> None:
        """Raises PermissionDeniedError when ``principal``'s role may not call ``service``."""
        if self.guarded(service) and principal is not ANONYMOUS and principal.role not in _SERVICE_ROLES[service]:
            allowed = " or ".join(_SERVICE_ROLES[service])
            raise PermissionDeniedError(
                f"a token of role {principal.role} may not call {service}; it needs {allowed}"
            )


def _bearer(metadata: Sequence[tuple[str, Any]]) -> str | None:
    for key, value in metadata:
        if key.lower() != "authorization":
            continue
        text = value.decode() if isinstance(value, bytes) else str(value)
        scheme, _, token = text.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return None


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Checks token, role and tenant of every call of a plancache service."""

    def __init__(self, policy: AuthPolicy, cache: PlanCache) -> None:
        self._policy = policy
        self._cache = cache

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Any],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        service = details.method.rsplit("/", 2)[-2] if details.method.count("/") >= 2 else ""
        if handler is None or service not in _SERVICE_ROLES:
            return handler
        principal = ANONYMOUS
        try:
            principal = self._policy.authenticate(details.invocation_metadata, service)
            self._policy.authorize(principal, service)
        except AuthError as exc:
            _log_refusal(details.method, exc, principal.name)
            return _refusing(handler, exc)
        return self._bound(handler, principal, details.method)

    async def _check(self, request: Any, principal: Principal) -> None:
        """A tenant's caller may name only its tenant's collections (others look missing)."""
        for name in self._named_collections(request):
            try:
                collection = await asyncio.to_thread(self._cache.store.get_collection, name)
            except NotFoundError:
                continue  # the servicer answers for a missing one, or creates it
            if collection.tenant != principal.tenant:
                raise NotFoundError(f"collection {name!r} does not exist")

    def _named_collections(self, request: Any) -> list[str]:
        names: list[str] = []
        fields = request.DESCRIPTOR.fields_by_name
        kind = request.DESCRIPTOR.name
        if kind == "CreateCollectionRequest":
            return names  # a new collection: the servicer gives it the caller's tenant
        if "collection" in fields:
            value = request.collection
            names.append(value if isinstance(value, str) else value.name)
        if "name" in fields and kind in _NAMED_BY_NAME:
            names.append(request.name)
        if "template" in fields and request.HasField("template"):
            names.append(request.template.collection)
        if "lookup_id" in fields and request.lookup_id:
            names.append(self._cache.recent_collection(request.lookup_id) or "")
        if kind == "ExecuteRequest" and request.WhichOneof("message") == "start":
            start = request.start
            if start.WhichOneof("plan") == "template":
                names.append(start.template.collection)
            elif start.WhichOneof("plan") == "plan_handle":
                with contextlib.suppress(PlancacheError):  # Execute reports a bad handle
                    names.append(decode_handle(start.plan_handle)[0])
        return [name for name in names if name]

    def _bound(self, handler: grpc.RpcMethodHandler, principal: Principal, method: str) -> grpc.RpcMethodHandler:
        """The handler, run as ``principal``, after the tenant check of its request."""
        scoped = principal.tenant is not None

        async def admit(request: Any, context: grpc.aio.ServicerContext) -> None:
            if not scoped:
                return
            try:
                await self._check(request, principal)
            except PlancacheError as exc:
                _log_refusal(method, exc, principal.name)
                await context.abort(status_for(exc), str(exc))

        async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            _act_as(principal)
            await admit(request, context)
            return await handler.unary_unary(request, context)

        async def unary_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            _act_as(principal)
            await admit(request, context)
            async for response in _responses(handler.unary_stream(request, context)):
                yield response

        async def stream_unary(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
            _act_as(principal)
            if scoped:
                requests = await _peeked(requests, lambda first: admit(first, context))
            return await handler.stream_unary(requests, context)

        async def stream_stream(
            requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
        ) -> AsyncIterator[Any]:
            _act_as(principal)
            if scoped:
                requests = await _peeked(requests, lambda first: admit(first, context))
            async for response in _responses(handler.stream_stream(requests, context)):
                yield response

        if handler.unary_unary:
            return handler._replace(unary_unary=unary_unary)
        if handler.unary_stream:
            return handler._replace(unary_stream=unary_stream)
        if handler.stream_unary:
            return handler._replace(stream_unary=stream_unary)
        return handler._replace(stream_stream=stream_stream)


async def _peeked(requests: AsyncIterator[Any], admit: Callable[[Any], Any]) -> AsyncIterator[Any]:
    """Check the first request of a stream, then hand on the whole stream."""
    iterator = aiter(requests)
    first = await anext(iterator, None)
    if first is not None:
        await admit(first)

    async def chained() -> AsyncIterator[Any]:
        if first is not None:
            yield first
        async for request in iterator:
            yield request

    return chained()


async def _responses(result: Any) -> AsyncIterator[Any]:
    """A streaming behaviour's responses, whether it yields them or writes them itself."""
    if inspect.isasyncgen(result):
        async for response in result:
            yield response
    else:
        await result


def _refusing(handler: grpc.RpcMethodHandler, error: PlancacheError) -> grpc.RpcMethodHandler:
    """A handler of the same shape that refuses the call without running anything."""
    code, message = status_for(error), str(error)

    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(code, message)

    async def refuse_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await context.abort(code, message)
        yield  # pragma: no cover - abort raises

    if handler.unary_unary:
        return handler._replace(unary_unary=refuse)
    if handler.unary_stream:
        return handler._replace(unary_stream=refuse_stream)
    if handler.stream_unary:
        return handler._replace(stream_unary=refuse)
    return handler._replace(stream_stream=refuse_stream)


def _log_refusal(method: str, error: PlancacheError, actor: str) -> None:
    log.info("rpc_refused", rpc=method, code=status_for(error).name, actor=actor, error=str(error))
