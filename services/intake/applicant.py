"""The applicant's own page, behind the secret link of the completion page and the acknowledgement:
the status in plain words, more information or files, consents, withdrawal.

The link is the only credential: it opens one consultation until it expires or is revoked, and an
unknown, expired or revoked one gets the same answer (404), which says nothing about the consultation.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import TypeAdapter, ValidationError

from services.intake import domain, handlers, record, repository, tables
from services.intake.pages import PortalRefused, page_locale
from services.intake.submissions import current_correlation
from shared import i18n
from shared.contract.consultation import APPLICANT, Consents
from shared.contract.vocabulary import SupportField
from shared.http import MultiLineText
from shared.i18n import N_

if TYPE_CHECKING:
    from services.intake.portal import Portal

# What each status means to the applicant, in plain words.
STATUS_TEXT: Final = {
    domain.Status.SUBMITTED: (
        N_("Received"),
        N_("We have received your consultation. A full-time supporter will review it and contact you."),
    ),
    domain.Status.ACCEPTED: (
        N_("Being handled"),
        N_("A supporter has taken on your consultation and will contact you about the next steps."),
    ),
    domain.Status.OUT_OF_SCOPE: (
        N_("Outside this hub's support"),
        N_("The hub has reviewed your consultation and cannot support it itself. It will tell you where else to turn."),
    ),
    domain.Status.CLOSED: (
        N_("Closed"),
        N_("The support for this consultation has ended. Thank you for consulting the hub."),
    ),
    domain.Status.WITHDRAWN: (
        N_("Withdrawn"),
        N_("This consultation was withdrawn. Nothing more will be done with it."),
    ),
}
"""What each status means to the applicant, in plain words: one entry per status (a test holds it to that)."""

LINK_NOT_VALID: Final = N_(
    "This link does not open a consultation. It may have expired or been revoked; please contact the hub."
)
NOTES_MAX: Final = 20_000
_NOTE: Final = TypeAdapter(MultiLineText)


def add_routes(router: APIRouter, portal: Portal) -> None:
    async def opened(token: str) -> tables.Consultation:
        async with portal.sessions() as session:
            row = await repository.consultation_by_link(session, handlers.link_digest(token), datetime.now(UTC))
        if row is None:  # answered by the portal's refusal page (`pages.install_refusals`)
            raise PortalRefused(404, LINK_NOT_VALID)
        return row

    def locale_for(request: Request, row: tables.Consultation) -> str:
        return page_locale(request, fallback=row.language)

    def back_to_page(token: str, locale: str, done: str) -> RedirectResponse:
        return RedirectResponse(f"/portal/my/{token}?lang={locale}&done={done}", status_code=303)

    async def page(
        request: Request, token: str, row: tables.Consultation, *, template: str, status: int = 200, **extra: Any
    ) -> Response:
        locale = locale_for(request, row)
        async with portal.sessions() as session:
            files = await repository.list_attachments(session, row.id)
        label, explanation = STATUS_TEXT[domain.Status(row.status)]
        return portal.render(
            template,
            locale,
            status=status,
            hub=portal.hubs.get(row.hub),
            consultation=row,
            topics=[SupportField(topic) for topic in row.topics],
            status_label=i18n.translate(label, locale),
            status_text=i18n.translate(explanation, locale),
            open=domain.Status(row.status) in domain.OPEN,
            files=files,
            token=token,
            page_url=f"{portal.pages.public_url}/portal/my/{token}",
            other_hubs=[hub for hub in portal.hubs.values() if hub.id != row.hub],
            shared_with=set(row.share_with or ()),
            done=request.query_params.get("done"),
            jst=record.JAPAN,
            **extra,
        )

    @router.get("/my/{token}/received")
    async def received(request: Request, token: str) -> Response:
        row = await opened(token)
        return await page(request, token, row, template="portal/received.html")

    @router.get("/my/{token}")
    async def applicant_page(request: Request, token: str) -> Response:
        row = await opened(token)
        return await page(request, token, row, template="portal/applicant.html", errors={})

    @router.post("/my/{token}/supplement")
    async def supplement(request: Request, token: str) -> Response:
        row = await opened(token)
        form = await request.form(max_files=6, max_fields=10)
        locale = locale_for(request, row)
        errors: dict[str, list[str]] = {}
        raw_note = form.get("note")
        note = raw_note.replace("\r\n", "\n").strip() if isinstance(raw_note, str) else ""
        if note:
            try:
                _NOTE.validate_python(note)
            except ValidationError:
                errors["note"] = [i18n.translate(N_("Control characters (such as NUL) are not allowed"), locale)]
            if len(note) > NOTES_MAX:
                errors["note"] = [
                    i18n.translate(N_("Too long (at most %(max_length)s characters)"), locale, max_length=NOTES_MAX)
                ]
        async with portal.sessions() as session:
            already = len(await repository.list_attachments(session, row.id))
        files, problems = await portal.stage_files(form, 0, locale)
        if already + len(files) > 20:
            problems.append(i18n.translate(N_("At most twenty files per consultation"), locale))
        if problems:
            errors["attachments"] = problems
        if not note and not files and not errors:
            errors["note"] = [i18n.translate(N_("Write something to add, or choose a file"), locale)]
        if errors:
            return await page(request, token, row, template="portal/applicant.html", status=422, errors=errors)
        try:
            async with portal.sessions.begin() as session:
                await handlers.supplement_consultation(
                    session,
                    hub=row.hub,
                    consultation_id=row.id,
                    note=note or None,
                    attachments=files,
                    correlation_id=current_correlation(),
                )
        except domain.NotAllowed:
            return back_to_page(token, locale, "closed")
        portal.submissions.on_commit()
        return back_to_page(token, locale, "supplemented")

    @router.post("/my/{token}/consents")
    async def consents(request: Request, token: str) -> Response:
        row = await opened(token)
        form = await request.form(max_files=0, max_fields=100)
        locale = locale_for(request, row)
        share_with = tuple(hub for hub in portal.hubs if hub != row.hub and hub in set(form.getlist("share_with")))
        agreed = Consents(contact_by_email=form.get("contact_by_email") == "yes", share_with=share_with)
        async with portal.sessions.begin() as session:
            changed = await handlers.change_consents(
                session,
                hub=row.hub,
                consultation_id=row.id,
                consents=agreed,
                changed_by=APPLICANT,
                correlation_id=current_correlation(),
            )
        if changed:
            portal.submissions.on_commit()
        return back_to_page(token, locale, "consents")

    @router.get("/my/{token}/withdraw")
    async def withdraw_page(request: Request, token: str) -> Response:
        row = await opened(token)
        return await page(request, token, row, template="portal/withdraw.html")

    @router.post("/my/{token}/withdraw")
    async def withdraw(request: Request, token: str) -> Response:
        row = await opened(token)
        locale = locale_for(request, row)
        try:
            async with portal.sessions.begin() as session:
                await handlers.withdraw_consultation(
                    session,
                    hub=row.hub,
                    consultation_id=row.id,
                    reason="applicant_request",
                    recorded_by=APPLICANT,
                    correlation_id=current_correlation(),
                )
        except domain.NotAllowed:
            return back_to_page(token, locale, "closed")
        portal.submissions.on_commit()
        return back_to_page(token, locale, "withdrawn")
