"""The applicant portal, server-rendered: form → confirmation (確認画面) → completion (受付番号), and the
applicant's own page behind a secret link. Works without JavaScript; every word from the catalogs.

Bots: a honeypot field a person never sees, and a signed form token that dates the form; a form sent
back sooner than `portal_min_fill_s` after it was served is shown again instead of accepted.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import itsdangerous
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.datastructures import FormData, UploadFile

from services.intake import applicant, attachments, handlers, record, tables
from services.intake.pages import Pages, PortalRefused, page_locale
from services.intake.submissions import Submissions
from shared import i18n
from shared.contract.consultation import Attachment
from shared.contract.vocabulary import Channel
from shared.http import field_errors
from shared.hubs import Hub
from shared.i18n import N_

FORM_KEY_NAME: Final = "portal-form"
FORM_MAX_AGE_S: Final = 24 * 3600
HONEYPOT: Final = "website"
FORM_NOT_VALID: Final = N_("This form is not valid any more. Please start again.")
CO_RESEARCHER_ROWS: Final = 3

_SINGLE_FIELDS: Final = (
    "applicant_kind",
    "organization",
    "corporate_number",
    "prefecture",
    "family_name",
    "given_name",
    "family_name_kana",
    "given_name_kana",
    "email",
    "phone",
    "product_name",
    "product_kind",
    "development_stage",
    "title",
    "body",
    "meeting_format",
    "language",
)


@dataclass(slots=True)
class FormState:
    """What the form page shows: the values as typed, each field's errors, the staged files."""

    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)
    notice: str | None = None
    staged: list[Attachment] = field(default_factory=list)


def form_values(form: FormData) -> dict[str, Any]:
    """The form's fields as the record's JSON: blanks left out, lists for the repeatable ones."""
    values: dict[str, Any] = {}
    for name in _SINGLE_FIELDS:
        value = form.get(name)
        if isinstance(value, str) and value.strip():
            values[name] = value.strip() if name != "body" else value.replace("\r\n", "\n")
    values["topics"] = [value for value in form.getlist("topics") if isinstance(value, str)]
    values["share_with"] = [value for value in form.getlist("share_with") if isinstance(value, str)]
    values["consent_to_contact_by_email"] = form.get("consent_to_contact_by_email") == "yes"
    co_researchers = []
    for row in range(CO_RESEARCHER_ROWS):
        person, affiliation = form.get(f"co_researcher_{row}_name"), form.get(f"co_researcher_{row}_affiliation")
        if isinstance(person, str) and person.strip():
            entry = {"name": person.strip()}
            if isinstance(affiliation, str) and affiliation.strip():
                entry["affiliation"] = affiliation.strip()
            co_researchers.append(entry)
    values["co_researchers"] = co_researchers
    return values


class Portal:
    def __init__(
        self,
        submissions: Submissions,
        sessions: async_sessionmaker[AsyncSession],
        store: attachments.AttachmentStore,
        pages: Pages,
        *,
        min_fill_s: float,
    ) -> None:
        self.submissions = submissions
        self.sessions = sessions
        self.store = store
        self.pages = pages
        self.min_fill_s = min_fill_s
        self.hubs = submissions.hubs
        self._signer: itsdangerous.URLSafeTimedSerializer | None = None

    def render(self, name: str, locale: str, *, status: int = 200, **context: Any) -> HTMLResponse:
        return self.pages.render(name, locale, status=status, **context)

    def refused(self, refusal: PortalRefused, locale: str) -> HTMLResponse:
        return self.pages.refused(refusal, locale)

    def hub(self, hub_id: str) -> Hub:
        hub = self.hubs.get(hub_id)
        if hub is None:
            raise PortalRefused(404, N_("There is no hub '%(hub)s' in the network"), hub=hub_id)
        return hub

    # --- the form token: who served it, when

    async def signer(self) -> itsdangerous.URLSafeTimedSerializer:
        if self._signer is None:
            async with self.sessions.begin() as session:
                key = await _intake_secret(session, FORM_KEY_NAME)
            self._signer = itsdangerous.URLSafeTimedSerializer(key, salt="hubnet-portal-form")
        return self._signer

    async def new_form_token(self, hub: str, nonce: str | None = None) -> str:
        """A form token dated now; `nonce` keeps a corrected form the same submission (its idempotency key)."""
        return (await self.signer()).dumps({"hub": hub, "nonce": nonce or secrets.token_urlsafe(16)})

    async def read_form_token(self, token: object, hub: str) -> tuple[str, float]:
        """The form's nonce and its age in seconds; `PortalRefused` when forged, foreign or too old."""
        if not isinstance(token, str):
            raise PortalRefused(400, FORM_NOT_VALID)
        try:
            payload, signed_at = (await self.signer()).loads(token, max_age=FORM_MAX_AGE_S, return_timestamp=True)
        except itsdangerous.BadData:
            raise PortalRefused(400, FORM_NOT_VALID) from None
        if not isinstance(payload, dict) or payload.get("hub") != hub or not isinstance(payload.get("nonce"), str):
            raise PortalRefused(400, FORM_NOT_VALID)
        return payload["nonce"], (datetime.now(UTC) - signed_at).total_seconds()

    async def sign_staged(self, staged: Sequence[Attachment]) -> str:
        return (await self.signer()).dumps([item.model_dump(mode="json") for item in staged], salt="hubnet-staged")

    async def read_staged(self, value: object) -> list[Attachment]:
        if not isinstance(value, str) or not value:
            return []
        try:
            items = (await self.signer()).loads(value, max_age=FORM_MAX_AGE_S, salt="hubnet-staged")
        except itsdangerous.BadData:
            raise PortalRefused(400, FORM_NOT_VALID) from None
        return [Attachment.model_validate(item) for item in items]

    # --- files

    async def stage_files(self, form: FormData, already: int, locale: str) -> tuple[list[Attachment], list[str]]:
        """Store the form's new files (at most five in all): their metadata, and what was refused, worded."""
        uploads = [item for item in form.getlist("attachments") if isinstance(item, UploadFile) and item.filename]
        staged: list[Attachment] = []
        if already + len(uploads) > attachments.MAX_PER_SUBMISSION:
            return staged, [i18n.translate(N_("At most five files in all"), locale)]
        problems = []
        for upload in uploads:
            data = await upload.read(attachments.MAX_BYTES + 1)
            try:
                attachment = attachments.inspect(upload.filename or "", data)
            except attachments.AttachmentRefused as refusal:
                problems.append(i18n.translate(refusal.message, locale, **refusal.params))
                continue
            await self.store.put(str(attachment.attachment_id), data)
            staged.append(attachment)
        return staged, problems


async def _intake_secret(session: AsyncSession, name: str) -> bytes:
    """Intake's own random key by name, made by whichever replica asks first."""
    await session.execute(
        insert(tables.Secret).values(name=name, value=secrets.token_bytes(32)).on_conflict_do_nothing()
    )
    value = await session.scalar(select(tables.Secret.value).where(tables.Secret.name == name))
    assert value is not None
    return bytes(value)


def create_router(portal: Portal) -> APIRouter:
    router = APIRouter(prefix="/portal", include_in_schema=False)

    @router.get("/")
    async def index(request: Request) -> Response:
        locale = page_locale(request)
        return portal.render("portal/index.html", locale, hubs=list(portal.hubs.values()), hub=None)

    @router.get("/{hub}")
    async def form(request: Request, hub: str) -> Response:
        locale = page_locale(request)
        try:
            the_hub = portal.hub(hub)
        except PortalRefused as refusal:
            return portal.refused(refusal, locale)
        state = FormState(values={"language": locale, "consent_to_contact_by_email": True})
        return await _form_page(portal, the_hub, locale, state)

    @router.post("/{hub}/confirm")
    async def confirm(request: Request, hub: str) -> Response:
        form = await request.form(max_files=attachments.MAX_PER_SUBMISSION + 1, max_fields=200)
        locale = _form_locale(form)
        try:
            the_hub = portal.hub(hub)
            nonce, age = await portal.read_form_token(form.get("form_token"), hub)
            staged = await portal.read_staged(form.get("staged"))
        except PortalRefused as refusal:
            return portal.refused(refusal, locale)
        values = form_values(form)
        if form.get(HONEYPOT):
            # Only a program fills a field nobody can see.
            return portal.refused(PortalRefused(422, N_("This form could not be accepted.")), locale)
        removed = set(form.getlist("remove_staged"))
        staged = [item for item in staged if str(item.attachment_id) not in removed]
        new_files, file_problems = await portal.stage_files(form, len(staged), locale)
        staged += new_files
        state = FormState(values=values, staged=staged)
        if file_problems:
            state.errors["attachments"] = file_problems
        try:
            consultation = record.PortalConsultation.model_validate(values)
            portal.submissions.check_hubs(consultation)
        except (ValidationError, RequestValidationError) as error:
            for problem in field_errors(error.errors(), locale):
                state.errors.setdefault(_form_field(problem["field"]), []).append(problem["message"])
        if age < portal.min_fill_s:
            state.notice = N_("The form was sent very quickly. Please check your entries and send it again.")
        if state.errors or state.notice:
            return await _form_page(portal, the_hub, locale, state, status=422, nonce=nonce)
        return portal.render(
            "portal/confirm.html",
            locale,
            hub=the_hub,
            consultation=consultation,
            record_json=consultation.model_dump_json(exclude_none=True),
            staged=staged,
            staged_token=await portal.sign_staged(staged),
            form_token=form.get("form_token"),
            hub_names=portal.hubs,
        )

    @router.post("/{hub}/submit")
    async def submit(request: Request, hub: str) -> Response:
        form = await request.form(max_files=0, max_fields=20)
        locale = _form_locale(form)
        try:
            the_hub = portal.hub(hub)
            nonce, _ = await portal.read_form_token(form.get("form_token"), hub)
            staged = await portal.read_staged(form.get("staged"))
            raw = form.get("record")
            consultation = record.PortalConsultation.model_validate_json(raw if isinstance(raw, str) else "")
        except PortalRefused as refusal:
            return portal.refused(refusal, locale)
        except ValidationError:
            return portal.refused(PortalRefused(400, FORM_NOT_VALID), locale)
        if form.get("action") == "back":
            values = json.loads(consultation.model_dump_json(exclude_none=True))
            state = FormState(values=values, staged=staged)
            return await _form_page(portal, the_hub, locale, state, nonce=nonce, token=form.get("form_token"))
        try:
            receipt = await portal.submissions.submit(
                consultation,
                hub=hub,
                channel=Channel.PORTAL,
                idempotency_key=f"portal:{nonce}",
                attachments=staged,
            )
        except handlers.IdempotencyKeyReused:
            return portal.refused(
                PortalRefused(409, N_("This form was already sent with other entries. Please start again.")), locale
            )
        suffix = "" if locale == i18n.DEFAULT_LOCALE else f"?lang={locale}"
        return RedirectResponse(f"/portal/my/{receipt.link_token}/received{suffix}", status_code=303)

    applicant.add_routes(router, portal)
    return router


def _form_locale(form: FormData) -> str:
    value = form.get("lang")
    return value if isinstance(value, str) and value in i18n.LOCALES else i18n.DEFAULT_LOCALE


def _form_field(name: str) -> str:
    """The form control an API field's error belongs under: `topics.2` under the topics group, say."""
    head, _, rest = name.partition(".")
    if head == "co_researchers":
        row, _, column = rest.partition(".")
        return f"co_researcher_{row}_{column or 'name'}"
    if head == "contact_name":
        return "family_name"
    return head


async def _form_page(
    portal: Portal,
    hub: Hub,
    locale: str,
    state: FormState,
    *,
    status: int = 200,
    nonce: str | None = None,
    token: object = None,
) -> HTMLResponse:
    # A form shown again keeps its nonce (one submission, however often it is corrected) but is dated
    # afresh, so that the fill time counts from what the person sees now.
    form_token = token if isinstance(token, str) else await portal.new_form_token(hub.id, nonce)
    summary = [(name, message) for name, messages in state.errors.items() for message in messages]
    return portal.render(
        "portal/form.html",
        locale,
        status=status,
        hub=hub,
        values=state.values,
        errors=state.errors,
        summary=summary,
        notice=state.notice,
        staged=state.staged,
        staged_token=await portal.sign_staged(state.staged),
        form_token=form_token,
        other_hubs=[other for other in portal.hubs.values() if other.id != hub.id],
        co_researcher_rows=CO_RESEARCHER_ROWS,
        honeypot=HONEYPOT,
        max_body=20_000,
    )
