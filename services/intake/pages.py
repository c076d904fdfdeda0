"""What every portal page shares: the templates (Jinja2 with the catalogs), the page language, the
headers, and the refusal page."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import FileSystemLoader, StrictUndefined, select_autoescape

from services.intake import attachments
from shared import i18n
from shared.contract.vocabulary import (
    ApplicantKind,
    DevelopmentStage,
    Language,
    MeetingFormat,
    Prefecture,
    ProductKind,
    SupportField,
)

TEMPLATES_DIR: Final = Path(__file__).parent / "templates"
STATIC_DIR: Final = Path(__file__).parent / "static"

# Pages may carry the applicant's secret in their address: no referrer leaves them, nothing is cached.
PAGE_HEADERS: Final = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}

# The choices the forms offer, in the order they offer them.
VOCABULARY: Final[Mapping[str, Sequence[Any]]] = {
    "applicant_kind": list(ApplicantKind),
    "prefecture": list(Prefecture),
    "product_kind": list(ProductKind),
    "development_stage": list(DevelopmentStage),
    "topics": list(SupportField),
    "meeting_format": list(MeetingFormat),
    "language": list(Language),
}


class PortalRefused(Exception):
    """A request the portal answers with a page of its own (bad token, unknown hub): status and msgid."""

    def __init__(self, status: int, message: str, /, **params: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.params = params


def page_locale(request: Request, fallback: str = i18n.DEFAULT_LOCALE) -> str:
    """`?lang=` when it names a catalog; otherwise the fallback (Japanese): the portal is a Japanese site
    with an English switch, not a guess from the browser."""
    asked = request.query_params.get("lang")
    return asked if asked in i18n.LOCALES else fallback


class Pages:
    def __init__(self, public_url: str) -> None:
        self.public_url = public_url.rstrip("/")
        self.templates = i18n.jinja_environment(
            FileSystemLoader(TEMPLATES_DIR), undefined=StrictUndefined, autoescape=select_autoescape(["html"])
        )

    def render(self, name: str, locale: str, *, status: int = 200, **context: Any) -> HTMLResponse:
        html = self.templates.get_template(name).render(
            context,
            locale=locale,
            vocabulary=VOCABULARY,
            accepted_extensions=",".join(attachments.ACCEPTED_EXTENSIONS),
        )
        return HTMLResponse(html, status_code=status, headers={**PAGE_HEADERS, "Content-Language": locale})

    def refused(self, refusal: PortalRefused, locale: str) -> HTMLResponse:
        message = i18n.translate(refusal.message, locale, **refusal.params)
        return self.render("portal/refused.html", locale, status=refusal.status, message=message, hub=None)


def install_refusals(app: FastAPI, pages: Pages) -> None:
    """A `PortalRefused` raised by a portal route becomes the refusal page, in the page's language."""

    async def refused(request: Request, error: Exception) -> Response:
        assert isinstance(error, PortalRefused)
        return pages.refused(error, page_locale(request))

    app.add_exception_handler(PortalRefused, refused)
