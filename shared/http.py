"""HTTP conventions shared by the services: errors in the caller's language, input hygiene, correlation, staff auth."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Annotated, Any

import email_validator
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import auth, i18n
from shared.i18n import N_
from shared.observability import correlation_id, new_correlation_id

CORRELATION_HEADER = "X-Correlation-ID"


class Problem(HTTPException):
    """An error a person can read: a stable `code` for programs, and a message from the catalogs.

    `message` is the msgid (the English wording, extracted from this third argument) and `params`
    fill its `%(name)s` placeholders; the answer renders it in the caller's language and in all.
    """

    def __init__(self, status: int, code: str, message: str, /, **params: Any) -> None:
        super().__init__(status_code=status, detail=code)
        self.code = code
        self.message = message
        self.params = params


class FieldProblem(BaseModel):
    """What is wrong with one field, in the caller's language and in each."""

    model_config = ConfigDict(extra="allow")  # message_ja, message_en: one per locale

    field: str = Field(description="The field's name, dotted for nested ones; `body` for the whole body")
    message: str


class ProblemBody(BaseModel):
    """The body of every error answer."""

    error: str = Field(description="A stable code for programs, e.g. `not_found`, `validation_failed`")
    message: str = Field(description="For a person, in the language `Accept-Language` asks for (ja, en)")
    messages: dict[str, str] = Field(description="The message in every language, by language code")
    fields: list[FieldProblem] | None = Field(
        default=None, description="With `validation_failed`: each field's problem"
    )


_DESCRIPTIONS = {
    400: "The body cannot be read (not UTF-8, or not JSON)",
    401: "No valid staff token (`Authorization: Bearer …`)",
    403: "The token's role may not do this",
    404: "No such hub, or nothing by this id at the caller's hub (another hub's records are not revealed)",
    409: "The request conflicts with the record's state",
    413: "The body is larger than the service accepts",
    422: "A field is invalid (`fields` names each), or the request cannot be applied as sent",
    429: "Too many requests from this client; `Retry-After` says when to try again",
    503: "The service is carrying all it can; `Retry-After` says when to try again",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route: each error status it can answer, with the problem body; 503 (load
    shedding, `LoadShedding`) goes for every route."""
    return {status: {"model": ProblemBody, "description": _DESCRIPTIONS[status]} for status in (*statuses, 503)}


def not_found(message: str, /, **params: Any) -> Problem:
    """404 with a message naming what is missing, e.g. `not_found("Hub '%(hub)s' not found", hub=hub)`."""
    return Problem(404, "not_found", message, **params)


def preferred_language(request: Request) -> str:
    return i18n.negotiate(request.headers.get("accept-language"))


def problem_response(
    headers: Headers,
    status: int,
    code: str,
    message: str,
    params: Mapping[str, Any],
    *,
    extra: Mapping[str, Any] | None = None,
    response_headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The error body every service answers with: `error`, `message` (negotiated), `messages` (all)."""
    locale = i18n.negotiate(headers.get("accept-language"))
    messages = i18n.in_every_locale(message, **params)
    body = {"error": code, "message": messages[locale], "messages": messages, **(extra or {})}
    return JSONResponse(
        body,
        status_code=status,
        headers={"Content-Language": locale, "Vary": "Accept-Language", **(response_headers or {})},
    )


# Input hygiene. PostgreSQL refuses NUL in text, and no person means to type a control character (C0,
# DEL, C1): refuse them (422, naming the field) before any I/O. Pydantic already refuses lone surrogates.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_LINE_BREAKS_AND_TABS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _refusing(characters: re.Pattern[str]) -> AfterValidator:
    def check(value: str) -> str:
        if characters.search(value):
            raise PydanticCustomError("control_characters", "Control characters are not allowed")
        return value

    return AfterValidator(check)


def _documented(characters: re.Pattern[str]) -> FieldInfo:
    """The same refusal stated in the JSON Schema (an ECMA-262 pattern), so that clients and generated
    tests know it: a string of none of those characters."""
    ecma = re.sub(r"\\x([0-9a-f]{2})", r"\\u00\1", characters.pattern)
    info: FieldInfo = Field(json_schema_extra={"pattern": f"^{ecma.replace('[', '[^', 1)}*$"})
    return info


def _any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


_UNDELIVERABLE = "|".join(_any_case(name) for name in email_validator.SPECIAL_USE_DOMAIN_NAMES)

EmailInput = Annotated[
    EmailStr,
    Field(
        max_length=254,
        # email-validator's refusals beyond the syntax of `format: email`: quoted local parts, address
        # literals, and special-use domains (`.test`, `.invalid`, …), which receive no mail.
        json_schema_extra={"pattern": f'^(?!")(?!.*@\\[)(?!.*[.@]({_UNDELIVERABLE})$).*$'},
        description="An address mail can reach: no quoted local part, address literal or special-use domain",
    ),
]
"""An email address a person gives us, to write to."""


def matching(pattern: str, error: str) -> tuple[AfterValidator, FieldInfo]:
    """Metadata for an `Annotated[str, …]` that must match `pattern` (stated in the JSON Schema), refused
    with the error type `error`, which `_FIELD_MESSAGES` explains to a person in that field's terms."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.search(value):
            raise PydanticCustomError(error, "The format is not valid")
        return value

    info: FieldInfo = Field(json_schema_extra={"pattern": pattern})
    return AfterValidator(check), info


SingleLineText = Annotated[str, _refusing(_CONTROL), _documented(_CONTROL)]
"""Text on one line (a name, a title): no control characters at all."""

MultiLineText = Annotated[
    str, _refusing(_CONTROL_BUT_LINE_BREAKS_AND_TABS), _documented(_CONTROL_BUT_LINE_BREAKS_AND_TABS)
]
"""Free text: line breaks and tabs allowed, no other control characters."""


# What a person is told about a field, by pydantic error type; `%(…)s` come from the error's context.
_FIELD_MESSAGES = {
    "missing": N_("This field is required"),
    "string_too_short": N_("Too short (at least %(min_length)s characters)"),
    "string_too_long": N_("Too long (at most %(max_length)s characters)"),
    # TRANSLATORS: a list (the topics of a consultation, say) has fewer items than it needs.
    "too_short": N_("Choose at least %(min_length)s"),
    # TRANSLATORS: a list has more items than it may.
    "too_long": N_("Too many (at most %(max_length)s)"),
    # TRANSLATORS: %(expected)s lists the allowed values as the API spells them, e.g. 'ja' or 'en'.
    "enum": N_("Choose one of: %(expected)s"),
    "literal_error": N_("Choose one of: %(expected)s"),
    "string_type": N_("Enter text"),
    "string_unicode": N_("The text holds characters that are not valid Unicode"),
    "string_pattern_mismatch": N_("The format is not valid"),
    "control_characters": N_("Control characters (such as NUL) are not allowed"),
    "bool_parsing": N_("Use true or false"),
    "bool_type": N_("Use true or false"),
    "int_parsing": N_("Enter a whole number"),
    "int_type": N_("Enter a whole number"),
    "int_from_float": N_("Enter a whole number"),
    "greater_than": N_("Must be greater than %(gt)s"),
    "greater_than_equal": N_("Must be at least %(ge)s"),
    "less_than": N_("Must be less than %(lt)s"),
    "less_than_equal": N_("Must be at most %(le)s"),
    "json_invalid": N_("The body is not valid JSON"),
    "model_attributes_type": N_("Give an object"),
    "model_type": N_("Give an object"),
    "dict_type": N_("Give an object"),
    "list_type": N_("Give an array"),
    "tuple_type": N_("Give an array"),
    "uuid_parsing": N_("The ID is not valid"),
    "uuid_type": N_("The ID is not valid"),
    "extra_forbidden": N_("Unknown field"),
    "corporate_number": N_("This is not a valid 13-digit corporate number"),
    "katakana": N_("Write the reading in full-width katakana"),
    "phone": N_("Enter a phone number: digits, with hyphens, spaces or a leading + if you like"),
    "unknown_hub": N_("There is no such hub"),
    "open_hours_slot": N_(
        "Choose an Open Hours slot: a weekday that is not a public holiday, at 10:00 or 11:00 Japan time"
    ),
    "open_hours_only": N_("Only an Open Hours consultation has a slot"),
}
_INVALID_EMAIL = N_("Enter a valid email address")
TOO_MANY_REQUESTS = N_("Too many requests from your address; please try again in a little while")
"""The gateway's 429 (deploy/local/stack/gateway.py renders it into nginx's configuration)."""
_INVALID_VALUE = N_("The value is not valid")


def _field_message(item: Mapping[str, Any]) -> dict[str, str]:
    kind = str(item["type"])
    message = _FIELD_MESSAGES.get(kind, _INVALID_VALUE)
    if kind == "value_error" and "email" in str(item["msg"]).lower():
        message = _INVALID_EMAIL
    try:
        return i18n.in_every_locale(message, **item.get("ctx", {}))
    except (KeyError, TypeError, ValueError):  # a context without the placeholder's value
        return i18n.in_every_locale(_INVALID_VALUE)


def field_errors(errors: Sequence[Mapping[str, Any]], locale: str) -> list[dict[str, str]]:
    """Pydantic's errors as a person reads them: the field (dotted), its message in `locale` and in each."""
    fields = []
    for item in errors:
        location = [str(part) for part in item["loc"] if part not in ("body", "query", "path", "header")]
        # A rule over several fields (a model validator) names the field it is about in its context.
        named = item.get("ctx", {}).get("field")
        if isinstance(named, str):
            location.append(named)
        # A JSON syntax error is located by character offset, which names no field.
        field = "body" if item["type"] == "json_invalid" else ".".join(location) or "body"
        messages = _field_message(item)
        fields.append(
            {"field": field, "message": messages[locale], **{f"message_{key}": text for key, text in messages.items()}}
        )
    return fields


# Headers an error answer needs: how to authenticate; that the unread rest of a body is not wanted.
_HEADERS_BY_STATUS = {401: {"WWW-Authenticate": "Bearer"}, 413: {"Connection": "close"}}

# Errors raised by Starlette or FastAPI themselves (unknown path, wrong method), by status.
_HTTP_ERRORS = {
    404: ("not_found", N_("Not found")),
    405: ("method_not_allowed", N_("This method is not allowed here")),
}


def install_error_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        headers = _HEADERS_BY_STATUS.get(exc.status_code)
        return problem_response(
            request.headers, exc.status_code, exc.code, exc.message, exc.params, response_headers=headers
        )

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        fields = field_errors(exc.errors(), preferred_language(request))
        names = ", ".join(field["field"] for field in fields)
        return problem_response(
            request.headers,
            422,
            "validation_failed",
            N_("Some fields are invalid: %(fields)s"),
            {"fields": names},
            extra={"fields": fields},
        )

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code, message = _HTTP_ERRORS.get(
            exc.status_code, ("http_error", N_("The request could not be handled (HTTP %(status)s)"))
        )
        return problem_response(
            request.headers, exc.status_code, code, message, {"status": exc.status_code}, response_headers=exc.headers
        )

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        # Starlette still raises the exception afterwards, so the server logs it.
        return problem_response(
            request.headers, 500, "internal_error", N_("Something went wrong on our side; please try again later"), {}
        )

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)


def _body_too_large(limit: int) -> Problem:
    return Problem(413, "body_too_large", "The request body is larger than %(limit)s bytes", limit=limit)


class BodySizeLimit:
    """Refuses a request body larger than `max_bytes` with 413: at once when its Content-Length says
    so, before a byte of it is read; otherwise (chunked) as soon as the bytes received pass the limit.
    Paths under a prefix of `larger` (forms that carry files, say) have that prefix's limit instead."""

    def __init__(self, app: ASGIApp, max_bytes: int, larger: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.larger = dict(larger or {})

    def limit(self, path: str) -> int:
        return next((limit for prefix, limit in self.larger.items() if path.startswith(prefix)), self.max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        limit = self.limit(scope["path"])
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await self._refuse(headers, limit, scope, receive, send)
            return

        received = 0
        started = False

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # An HTTPException: FastAPI's body reading lets it through to the Problem handler.
                    raise _body_too_large(limit)
            return message

        async def send_noting_start(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive_within_limit, send_noting_start)
        except Problem as problem:
            # The body was read outside the routes' error handling (by a middleware, say).
            if started or problem.code != "body_too_large":
                raise
            await self._refuse(headers, limit, scope, receive, send)

    async def _refuse(self, headers: Headers, limit: int, scope: Scope, receive: Receive, send: Send) -> None:
        problem = _body_too_large(limit)
        response = problem_response(
            headers,
            problem.status_code,
            problem.code,
            problem.message,
            problem.params,
            response_headers=_HEADERS_BY_STATUS[413],
        )
        await response(scope, receive, send)


def install_body_limit(app: FastAPI, max_bytes: int, *, larger: Mapping[str, int] | None = None) -> None:
    app.add_middleware(BodySizeLimit, max_bytes=max_bytes, larger=larger)


OVERLOADED = N_("The service is busy; please try again in a moment")

# What stays answerable under any load: the probes and the metrics.
_NEVER_SHED = frozenset({"/healthz", "/readyz", "/metrics"})


class LoadShedding:
    """Answers 503 with Retry-After at once, in the caller's language, while `limit` requests are already in
    progress: past what the service can carry, a fast refusal the client can retry beats a queue that
    grows until every request times out."""

    def __init__(self, app: ASGIApp, limit: int, retry_after_s: int = 1) -> None:
        self.app = app
        self.limit = limit
        self.retry_after_s = retry_after_s
        self.in_progress = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _NEVER_SHED:
            await self.app(scope, receive, send)
            return
        if self.in_progress >= self.limit:
            response = problem_response(
                Headers(scope=scope),
                503,
                "overloaded",
                OVERLOADED,
                {},
                response_headers={"Retry-After": str(self.retry_after_s)},
            )
            await response(scope, receive, send)
            return
        self.in_progress += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_progress -= 1


def install_load_shedding(app: FastAPI, limit: int) -> None:
    """`limit` 0 turns it off."""
    if limit > 0:
        app.add_middleware(LoadShedding, limit=limit)


class Correlation:
    """Each request runs under its caller's `X-Correlation-ID` (or a new one), echoed on the response. Plain
    ASGI: Starlette's `BaseHTTPMiddleware` would add a task group and a streamed copy of every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        value = Headers(scope=scope).get(CORRELATION_HEADER) or str(new_correlation_id())

        async def send_correlated(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[CORRELATION_HEADER] = value
            await send(message)

        token = correlation_id.set(value)
        try:
            await self.app(scope, receive, send_correlated)
        finally:
            correlation_id.reset(token)


def install_correlation(app: FastAPI) -> None:
    app.add_middleware(Correlation)


def staff_may(key: auth.PublicKey, action: auth.Action) -> Callable[..., Awaitable[auth.StaffPrincipal]]:
    """A FastAPI dependency: the staff member behind the bearer token (401 without one), whose roles allow
    `action` (403 otherwise). The route still answers 404 for another hub's records before anything else."""
    authenticated = staff_principal(key)

    async def dependency(request: Request) -> auth.StaffPrincipal:
        principal = await authenticated(request)
        hub = request.path_params.get("hub")
        if hub is not None and hub != principal.hub:
            # Another hub's staff learn nothing, not even that the hub or the consultation exists.
            raise not_found("Not found")
        if not principal.may(action):
            raise Problem(403, "forbidden", "Your role at this hub does not allow this")
        return principal

    return dependency


def staff_principal(key: auth.PublicKey) -> Callable[..., Awaitable[auth.StaffPrincipal]]:
    """A FastAPI dependency: the hub staff member behind the bearer token, or 401."""
    bearer = HTTPBearer(auto_error=False)

    async def dependency(request: Request) -> auth.StaffPrincipal:
        credentials: HTTPAuthorizationCredentials | None = await bearer(request)
        if credentials is None:
            raise Problem(401, "unauthenticated", "Authentication required (Bearer token)")
        try:
            return auth.verify_staff_token(key, credentials.credentials)
        except auth.InvalidToken as error:
            raise Problem(401, "invalid_token", "Invalid token: %(reason)s", reason=str(error)) from error

    return dependency
