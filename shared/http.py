"""HTTP conventions shared by the services: bilingual errors, correlation ids, staff authentication."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared import auth
from shared.observability import correlation_id, new_correlation_id

CORRELATION_HEADER = "X-Correlation-ID"

# Japanese wording for the pydantic error types an applicant is likely to meet.
_JA_MESSAGES = {
    "missing": "必須項目です",
    "string_too_short": "入力が短すぎます",
    "string_too_long": "入力が長すぎます",
    "too_short": "少なくとも1つ選択してください",
    "too_long": "選択が多すぎます",
    "enum": "選択肢の中から選んでください",
    "literal_error": "選択肢の中から選んでください",
    "value_error": "値が正しくありません",
    "string_type": "文字列で入力してください",
    "bool_parsing": "true か false を指定してください",
    "bool_type": "true か false を指定してください",
    "json_invalid": "JSON の形式が正しくありません",
    "model_attributes_type": "オブジェクトで指定してください",
    "dict_type": "オブジェクトで指定してください",
    "list_type": "配列で指定してください",
    "tuple_type": "配列で指定してください",
    "uuid_parsing": "ID の形式が正しくありません",
    "extra_forbidden": "不明な項目です",
}


class Problem(HTTPException):
    """An error a person can read, in Japanese and English."""

    def __init__(self, status: int, code: str, *, ja: str, en: str, **extra: Any) -> None:
        super().__init__(status_code=status, detail=code)
        self.code = code
        self.ja = ja
        self.en = en
        self.extra = extra


def preferred_language(request: Request) -> str:
    accept = request.headers.get("accept-language", "")
    for part in accept.split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("en"):
            return "en"
        if tag.startswith("ja"):
            return "ja"
    return "ja"


def _problem_body(request: Request, code: str, ja: str, en: str, **extra: Any) -> dict[str, Any]:
    language = preferred_language(request)
    return {
        "error": code,
        "message": ja if language == "ja" else en,
        "messages": {"ja": ja, "en": en},
        **extra,
    }


def _field_errors(error: RequestValidationError, language: str) -> list[dict[str, str]]:
    fields = []
    for item in error.errors():
        location = [str(part) for part in item["loc"] if part not in ("body", "query", "path")]
        # A JSON syntax error is located by character offset, which names no field.
        field = "body" if item["type"] == "json_invalid" else ".".join(location) or "body"
        english = str(item["msg"])
        japanese = _JA_MESSAGES.get(str(item["type"]), english)
        if item["type"] == "value_error" and "email" in english.lower():
            japanese = "メールアドレスの形式が正しくありません"
        fields.append(
            {
                "field": field,
                "message": japanese if language == "ja" else english,
                "message_ja": japanese,
                "message_en": english,
            }
        )
    return fields


def install_error_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return JSONResponse(
            _problem_body(request, exc.code, exc.ja, exc.en, **exc.extra), status_code=exc.status_code, headers=headers
        )

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        fields = _field_errors(exc, preferred_language(request))
        names = ", ".join(field["field"] for field in fields)
        body = _problem_body(
            request,
            "validation_failed",
            ja=f"入力内容に誤りがあります: {names}",
            en=f"Some fields are invalid: {names}",
            fields=fields,
        )
        return JSONResponse(body, status_code=422)

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)


def install_correlation(app: FastAPI) -> None:
    @app.middleware("http")
    async def correlate(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        value = request.headers.get(CORRELATION_HEADER) or str(new_correlation_id())
        token = correlation_id.set(value)
        try:
            response = await call_next(request)
        finally:
            correlation_id.reset(token)
        response.headers[CORRELATION_HEADER] = value
        return response


def staff_principal(key: auth.PublicKey) -> Callable[..., Awaitable[auth.StaffPrincipal]]:
    """A FastAPI dependency: the hub staff member behind the bearer token, or 401."""
    bearer = HTTPBearer(auto_error=False)

    async def dependency(request: Request) -> auth.StaffPrincipal:
        credentials: HTTPAuthorizationCredentials | None = await bearer(request)
        if credentials is None:
            raise Problem(
                401,
                "unauthenticated",
                ja="認証が必要です（Bearer トークン）",
                en="Authentication required (Bearer token)",
            )
        try:
            return auth.verify_staff_token(key, credentials.credentials)
        except auth.InvalidToken as error:
            raise Problem(401, "invalid_token", ja="トークンが無効です", en=f"Invalid token: {error}") from error

    return dependency


def not_found(what_ja: str, what_en: str) -> Problem:
    return Problem(404, "not_found", ja=f"{what_ja}が見つかりません", en=f"{what_en} not found")
