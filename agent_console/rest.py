"""A small framework for the REST API: typed routes that document themselves.

Each route names its request and response models (pydantic); the same declarations
validate requests, shape responses, check roles and produce the OpenAPI document, so
the document cannot drift from the code.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from routing import StaffIdentity

#: The id of the request, set by the app for logs and error bodies.
REQUEST_ID = web.RequestKey("request_id", str)
Handler = Callable[["Call"], Awaitable[Any]]


class Shape(BaseModel):
    """Base of request bodies: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ApiError(BaseModel):
    code: str
    message: str
    details: list[dict[str, Any]] = []
    request_id: str | None = None


class ErrorBody(BaseModel):
    error: ApiError


@dataclass
class Call:
    """One API request: the staff member, the path parameters, the body, the query."""

    request: web.Request
    staff: StaffIdentity | None
    params: dict[str, str]
    body: Any
    query: dict[str, str]


@dataclass
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    response: Any = None
    body: type[BaseModel] | None = None
    roles: tuple[str, ...] | None = ("agent", "supervisor", "admin")
    status: int = 200
    query: dict[str, str] = field(default_factory=dict)


def error_response(status: int, code: str, message: str, request: web.Request | None = None,
                   details: list[dict[str, Any]] | None = None) -> web.Response:
    """A JSON error: what was wrong and where."""
    request_id = request.get(REQUEST_ID) if request is not None else None
    body = {"error": {"code": code, "message": message, "details": details or [],
                      "request_id": request_id}}
    return web.json_response(body, status=status)


class Api:
    """A set of routes mounted under a prefix, with an OpenAPI document."""

    def __init__(self, title: str, version: str, prefix: str) -> None:
        self.title, self.version, self.prefix = title, version, prefix
        self.routes: list[Route] = []

    def route(self, method: str, path: str, *, summary: str, tag: str, response: Any = None,
              body: type[BaseModel] | None = None,
              roles: tuple[str, ...] | None = ("agent", "supervisor", "admin"),
              status: int = 200, query: dict[str, str] | None = None
              ) -> Callable[[Handler], Handler]:
        """Declare a route; `roles=None` means no sign-in needed."""

        def register(handler: Handler) -> Handler:
            self.routes.append(Route(method, path, handler, summary, tag, response, body, roles,
                                     status, query or {}))
            return handler

        return register

    def add_to(self, app: web.Application,
               authenticate: Callable[[web.Request], Awaitable[StaffIdentity | None]]) -> None:
        """Register every route on `app` (and the sign-in throttle they share)."""
        if THROTTLE_KEY not in app:
            app[THROTTLE_KEY] = SignInThrottle()
        for route in self.routes:
            app.router.add_route(route.method, self.prefix + route.path,
                                 self._wrap(route, authenticate))

    def _wrap(self, route: Route,
              authenticate: Callable[[web.Request], Awaitable[StaffIdentity | None]]
              ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        adapter = TypeAdapter(route.response) if route.response is not None else None

        async def handler(request: web.Request) -> web.StreamResponse:
            staff = await authenticate(request) if route.roles is not None else None
            if route.roles is not None:
                if staff is None:
                    return error_response(401, "unauthenticated", "sign in first", request)
                if not staff.has_role(*route.roles):
                    return error_response(403, "forbidden",
                                          f"needs one of the roles: {', '.join(route.roles)}",
                                          request)
            body: Any = None
            if route.body is not None:
                if request.content_type != "application/json":
                    return error_response(415, "unsupported_media_type",
                                          "send the body as application/json", request)
                raw = await request.read()
                try:
                    data = json.loads(raw or b"null")
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    return error_response(400, "malformed_json", f"body is not JSON: {exc}",
                                          request)
                try:
                    body = route.body.model_validate(data)
                except ValidationError as exc:
                    details = [{"loc": list(e["loc"]), "message": e["msg"]} for e in exc.errors()]
                    where = ".".join(str(p) for p in details[0]["loc"]) or "body"
                    return error_response(422, "invalid_body",
                                          f"{where}: {details[0]['message']}", request, details)
            call = Call(request, staff, dict(request.match_info), body, dict(request.query))
            result = await route.handler(call)
            if isinstance(result, web.StreamResponse):
                return result
            if adapter is None:
                return web.Response(status=204) if result is None else web.json_response(result)
            payload = adapter.dump_python(adapter.validate_python(result, from_attributes=True),
                                          mode="json")
            return web.json_response(payload, status=route.status)

        return handler

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI 3.1 document of every route."""
        components: dict[str, Any] = {}

        def schema_of(model: Any) -> dict[str, Any]:
            schema = TypeAdapter(model).json_schema(ref_template="#/components/schemas/{model}")
            for name, definition in schema.pop("$defs", {}).items():
                components[name] = definition
            if isinstance(model, type) and issubclass(model, BaseModel):
                components[model.__name__] = schema
                return {"$ref": f"#/components/schemas/{model.__name__}"}
            return schema

        error_ref = schema_of(ErrorBody)
        paths: dict[str, Any] = {}
        for route in self.routes:
            operation: dict[str, Any] = {
                "summary": route.summary,
                "tags": [route.tag],
                "operationId": f"{route.method.lower()}_{route.handler.__name__}",
                "responses": {},
            }
            params = [
                {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                for p in _path_params(route.path)
            ] + [
                {"name": q, "in": "query", "required": False, "description": d,
                 "schema": {"type": "string"}}
                for q, d in route.query.items()
            ]
            if params:
                operation["parameters"] = params
            if route.body is not None:
                operation["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": schema_of(route.body)}},
                }
            if route.response is not None:
                operation["responses"][str(route.status)] = {
                    "description": "OK",
                    "content": {"application/json": {"schema": schema_of(route.response)}},
                }
            else:
                operation["responses"]["204"] = {"description": "Done"}
            errors = {"400": "Malformed request", "404": "Not found", "409": "Conflict",
                      "422": "Invalid body"}
            if route.roles is not None:
                errors |= {"401": "Not signed in", "403": "Role not allowed"}
            for code, text in errors.items():
                operation["responses"][code] = {
                    "description": text,
                    "content": {"application/json": {"schema": error_ref}},
                }
            if route.roles is not None:
                operation["security"] = [{"bearer": []}, {"session": []}]
            paths.setdefault(self.prefix + route.path, {})[route.method.lower()] = operation
        return {
            "openapi": "3.1.0",
            "info": {"title": self.title, "version": self.version},
            "paths": paths,
            "components": {
                "schemas": components,
                "securitySchemes": {
                    "bearer": {"type": "http", "scheme": "bearer"},
                    "session": {"type": "apiKey", "in": "cookie", "name": "onestop_session"},
                },
            },
        }


def _path_params(path: str) -> list[str]:
    return [part[1:-1].split(":")[0] for part in path.split("/") if part.startswith("{")]


class SignInThrottle:
    """Failed sign-ins per client address: `burst` at once, refilled at `per_minute`.

    Per-account lockout stops guessing one password; this stops spraying many accounts
    from one address. Only failures are charged, so an office behind one address can
    still sign everyone in at the start of a shift."""

    def __init__(self, burst: int = 20, per_minute: float = 20, max_addresses: int = 10_000
                 ) -> None:
        self.burst, self.rate = burst, per_minute / 60.0
        self.max_addresses = max_addresses
        self._buckets: dict[str, tuple[float, float]] = {}

    def retry_after(self, address: str) -> int:
        """Seconds to wait before the next attempt from `address` (0: go ahead)."""
        tokens, _ = self._refill(address)
        return 0 if tokens >= 1 else int((1 - tokens) / self.rate) + 1

    def failed(self, address: str) -> None:
        tokens, now = self._refill(address)
        self._buckets[address] = (max(0.0, tokens - 1), now)
        if len(self._buckets) > self.max_addresses:  # forget the oldest entries
            for key in list(self._buckets)[: len(self._buckets) // 10]:
                del self._buckets[key]

    def _refill(self, address: str) -> tuple[float, float]:
        now = time.monotonic()
        tokens, since = self._buckets.get(address, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - since) * self.rate), now


THROTTLE_KEY = web.AppKey("sign_in_throttle", SignInThrottle)


def throttle_of(request: web.Request) -> SignInThrottle:
    """The app's sign-in throttle (one per app node)."""
    return request.config_dict[THROTTLE_KEY]
