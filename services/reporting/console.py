"""The staff console, server-rendered at `/console/`: sign-in with the staff accounts intake keeps, the
hub's queues and search, the record's tabs, the staff actions (posted to intake's API), CSV exports.

Every page is the signed-in member's own hub: the hub comes from their token, never from the address, so
another hub's consultations cannot even be named. The token sits in an HttpOnly, SameSite=Strict cookie;
each form also carries a value derived from it (`csrf`), which a page of another site cannot know.
Works without JavaScript; htmx (from npm, served here) swaps the results in place when it is there.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import hmac
import io
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

import babel.dates
import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.reporting import domain, repository, tables
from shared import auth, i18n
from shared.contract.consultation import NoteAdded
from shared.contract.vocabulary import (
    ApplicantKind,
    Channel,
    DevelopmentStage,
    Language,
    MeetingFormat,
    Outcome,
    OutOfScopeReason,
    Prefecture,
    ProductKind,
    ScreeningDecision,
    SupportField,
)
from shared.hubs import Hub
from shared.i18n import N_

TEMPLATES_DIR: Final = Path(__file__).parent / "templates"
STATIC_DIR: Final = Path(__file__).parent / "static"
COOKIE: Final = "hubnet_console"
LANG_COOKIE: Final = "hubnet_console_lang"
PAGE_SIZE: Final = 50
PAGE_HEADERS: Final = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}

STATUS_LABELS: Final = {
    domain.Status.SUBMITTED: N_("New"),
    domain.Status.SCREENING: N_("Awaiting screening"),
    domain.Status.MATCHED: N_("Matched"),
    domain.Status.MEETING_SCHEDULED: N_("Meeting scheduled"),
    domain.Status.IN_SUPPORT: N_("In support"),
    domain.Status.CLOSED: N_("Closed"),
    domain.Status.REFERRED: N_("Referred"),
    domain.Status.WITHDRAWN: N_("Withdrawn"),
    domain.Status.REJECTED: N_("Out of scope"),
}

OPEN = (
    domain.Status.SUBMITTED,
    domain.Status.SCREENING,
    domain.Status.MATCHED,
    domain.Status.MEETING_SCHEDULED,
    domain.Status.IN_SUPPORT,
)
QUEUES: Final[Mapping[str, tuple[str, tuple[domain.Status, ...]]]] = {
    "all": (N_("All"), ()),
    "new": (N_("New"), (domain.Status.SUBMITTED,)),
    "to_screen": (N_("To screen"), (domain.Status.SUBMITTED, domain.Status.SCREENING)),
    "overdue": (N_("Overdue"), (domain.Status.SUBMITTED, domain.Status.SCREENING)),
    "mine": (N_("Mine"), ()),
    "waiting": (N_("Waiting on the applicant"), OPEN),
    "in_support": (
        N_("In support"),
        (domain.Status.IN_SUPPORT, domain.Status.MATCHED, domain.Status.MEETING_SCHEDULED),
    ),
    "closed": (
        N_("Closed"),
        (domain.Status.CLOSED, domain.Status.WITHDRAWN, domain.Status.REJECTED, domain.Status.REFERRED),
    ),
}
"""The queues, each a saved search: its label and the statuses it shows. "mine": what I screened or entered;
"overdue": waiting for its screening more than `domain.SCREENING_BUSINESS_DAYS` business days, and not on its
applicant; "waiting": a note asked the applicant for something, and they have not added anything since."""

COLUMNS: Final = (
    ("reference", N_("Reference")),
    ("submitted_at", N_("Received on")),
    ("organization", N_("Organisation")),
    ("title", N_("Subject")),
    ("topics", N_("Topics")),
    ("product_kind", N_("Product kind")),
    ("channel", N_("Channel")),
    ("status", N_("Status")),
)
"""The list's columns, in order: the page and its CSV show exactly these."""

TABS: Final = (
    ("consultation", N_("Consultation")),
    ("company", N_("Company")),
    ("product", N_("Product")),
    ("experts", N_("Experts")),
    ("support", N_("Support")),
    ("co_researchers", N_("Co-researchers")),
    ("progress", N_("Progress")),
)
"""The record's tabs, as the hubs' own forms name them: 相談情報, 事業者情報, 対象製品情報, 専門家情報,
支援情報, 共同研究者情報, 進捗状況."""

ENUMS: Final[Mapping[str, type[StrEnum]]] = {
    "channel": Channel,
    "language": Language,
    "applicant_kind": ApplicantKind,
    "product_kind": ProductKind,
    "development_stage": DevelopmentStage,
    "prefecture": Prefecture,
    "meeting_format": MeetingFormat,
    "screening_decision": ScreeningDecision,
    "out_of_scope_reason": OutOfScopeReason,
    "outcome": Outcome,
}

EVENT_LABELS: Final = {
    "hubnet.consultation.submitted.v1": N_("Consultation received"),
    "hubnet.match.proposed.v1": N_("Experts proposed"),
    "hubnet.notification.sent.v1": N_("Notification sent"),
    "hubnet.notification.delivery_failed.v1": N_("Notification failed"),
    "hubnet.consultation.withdrawn.v1": N_("Withdrawn"),
    "hubnet.consultation.screened.v1": N_("Screened"),
    "hubnet.consultation.note_added.v1": N_("Note"),
    "hubnet.consultation.closed.v1": N_("Closed"),
    "hubnet.consultation.supplemented.v1": N_("The applicant added information"),
    "hubnet.consultation.consents_changed.v1": N_("Consents changed"),
}

TO_SCREENING: Final = N_("To screening")
TO_FIRST_CONTACT: Final = N_("To first contact (the first thing staff recorded)")
TO_MATCH: Final = N_("To experts proposed")

DIMENSIONS: Final = (
    ("status", N_("By status")),
    ("product_kind", N_("By product kind")),
    ("development_stage", N_("By development stage")),
    ("applicant_kind", N_("By kind of applicant")),
    ("channel", N_("By channel")),
    ("prefecture", N_("By prefecture")),
)
FUNNEL: Final = (N_("Submitted"), N_("Screened"), N_("Experts proposed"), N_("Meeting scheduled"), N_("Closed"))
QUARTER: Final = N_("Q%(number)s")
FISCAL_YEAR: Final = N_("FY%(year)s")
NOT_GIVEN: Final = N_("Not given")

SIGN_IN_REFUSED: Final = N_("The email address or password is not correct, or the account is locked for a while.")
INTAKE_UNAVAILABLE: Final = N_("The service is busy or unavailable. Please try again in a moment.")
NOT_ALLOWED: Final = N_("Your role at this hub does not allow this.")
READ_TIMEOUT_S: Final = 3.0


class SignInNeeded(Exception):
    """No valid console session: the page redirects to the sign-in form."""


@dataclass(frozen=True, slots=True)
class Staff:
    principal: auth.StaffPrincipal
    token: str

    @property
    def csrf(self) -> str:
        return hashlib.sha256(b"hubnet-console-csrf:" + self.token.encode()).hexdigest()


@dataclass(frozen=True)
class ListQuery:
    """A list's search, order and page, read from the address (so a view can be bookmarked and saved)."""

    queue: str = "all"
    search: repository.Search = field(default_factory=repository.Search)
    sort: str = "submitted_at"
    descending: bool = True
    after: str | None = None
    problems: tuple[str, ...] = ()

    def params(self, **changes: Any) -> str:
        """The query string of this list with some parameters changed (empty ones left out)."""
        values: dict[str, Any] = {
            "queue": self.queue,
            "q": self.search.text,
            "company": self.search.company,
            "from": self.search.submitted_from.isoformat() if self.search.submitted_from else "",
            "to": self.search.submitted_to.isoformat() if self.search.submitted_to else "",
            "topic": self.search.topic or "",
            "product_kind": self.search.product_kind or "",
            "channel": self.search.channel or "",
            "sort": self.sort,
            "dir": "desc" if self.descending else "asc",
        }
        values.update(changes)
        return urlencode({k: v for k, v in values.items() if v not in ("", None)})


def _choice(value: str | None, allowed: type[StrEnum]) -> str | None:
    return value if value in {member.value for member in allowed} else None


def _day(value: str | None, problems: list[str], label: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        problems.append(label)
        return None


def read_list_query(request: Request, staff: Staff) -> ListQuery:
    params = request.query_params
    problems: list[str] = []
    queue = params.get("queue", "all")
    queue = queue if queue in QUEUES else "all"
    search = repository.Search(
        text=params.get("q", "")[:200],
        company=params.get("company", "")[:200],
        submitted_from=_day(params.get("from"), problems, N_("Received from")),
        submitted_to=_day(params.get("to"), problems, N_("Received until")),
        topic=_choice(params.get("topic"), SupportField),
        product_kind=_choice(params.get("product_kind"), ProductKind),
        channel=_choice(params.get("channel"), Channel),
        statuses=tuple(status.value for status in QUEUES[queue][1]),
        actor=staff.principal.subject if queue == "mine" else None,
        received_before=domain.overdue_before(datetime.now(UTC)) if queue == "overdue" else None,
        # Overdue is the hub's delay; a consultation that waits on its applicant is in "waiting" instead.
        waiting={"waiting": True, "overdue": False}.get(queue),
    )
    sort = params.get("sort", "submitted_at")
    return ListQuery(
        queue=queue,
        search=search,
        sort=sort if sort in repository.SORTS else "submitted_at",
        descending=params.get("dir", "desc") != "asc",
        after=params.get("after") or None,
        problems=tuple(problems),
    )


def _cursor(after: tuple[Any, uuid.UUID] | None) -> str | None:
    if after is None:
        return None
    value, last_id = after
    return f"{value.isoformat() if isinstance(value, datetime) else value}|{last_id}"


def _parse_cursor(text: str | None, sort: str) -> tuple[Any, uuid.UUID] | None:
    if not text or "|" not in text:
        return None
    value, _, last = text.rpartition("|")
    try:
        return (datetime.fromisoformat(value) if sort == "submitted_at" else value), uuid.UUID(last)
    except ValueError:
        return None


class Console:
    """The console's pages and the calls they make to intake on the staff member's behalf."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        auth_key: auth.PublicKey,
        hubs: Mapping[str, Hub],
        intake_url: str,
        secure_cookies: bool,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.sessions = sessions
        self.auth_key = auth_key
        self.hubs = hubs
        self.intake_url = intake_url.rstrip("/")
        self.secure_cookies = secure_cookies
        self.transport = transport
        self.templates = i18n.jinja_environment(
            FileSystemLoader(TEMPLATES_DIR), undefined=StrictUndefined, autoescape=select_autoescape(["html"])
        )
        self.templates.filters["value_label"] = self.value_label
        self.templates.filters["when"] = _when

    # --- pages ----------------------------------------------------------------------------------

    def locale(self, request: Request) -> str:
        """`?lang=`, then the staff member's choice (a cookie), then the browser's languages."""
        asked = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE)
        return asked if asked in i18n.LOCALES else i18n.negotiate(request.headers.get("accept-language"))

    def render(
        self, request: Request, name: str, *, status: int = 200, staff: Staff | None = None, **context: Any
    ) -> HTMLResponse:
        locale = self.locale(request)
        hub = self.hubs.get(staff.principal.hub) if staff else None
        html = self.templates.get_template(name).render(
            context,
            locale=locale,
            staff=staff,
            hub=hub,
            status_labels=STATUS_LABELS,
            switch_url=_with_query(request, lang="en" if locale == "ja" else "ja"),
        )
        response = HTMLResponse(html, status_code=status, headers={**PAGE_HEADERS, "Content-Language": locale})
        if request.query_params.get("lang") in i18n.LOCALES:
            response.set_cookie(
                LANG_COOKIE,
                locale,
                max_age=365 * 86400,
                path="/console/",
                samesite="strict",
                secure=self.secure_cookies,
            )
        return response

    def staff(self, request: Request) -> Staff:
        token = request.cookies.get(COOKIE)
        if not token:
            raise SignInNeeded
        try:
            principal = auth.verify_staff_token(self.auth_key, token)
        except auth.InvalidToken as error:
            raise SignInNeeded from error
        if not principal.may(auth.Action.READ):
            raise SignInNeeded
        return Staff(principal, token)

    def checked(self, request: Request, form: Mapping[str, Any]) -> Staff:
        """The staff member of a form post, whose form carries the value derived from their token."""
        staff = self.staff(request)
        if not hmac.compare_digest(str(form.get("csrf", "")), staff.csrf):
            raise SignInNeeded
        return staff

    def value_label(self, value: str | None, column: str, locale: str) -> str:
        if value is None or value == "":
            return ""
        if column == "status":
            return i18n.translate(STATUS_LABELS.get(domain.Status(value), value), locale)
        enum = ENUMS.get(column) or (SupportField if column == "topics" else None)
        if enum is None:
            return value
        try:
            return i18n.label(enum(value), locale)
        except (ValueError, KeyError):
            return value

    def cells(self, row: tables.ConsultationView, locale: str) -> list[str]:
        """The row as the list shows it (and its CSV writes it), column by column."""
        cells = []
        for column, _ in COLUMNS:
            value = getattr(row, column)
            if column == "topics":
                cells.append(i18n.translator(locale).labels(SupportField(t) for t in (value or ())))
            elif column == "submitted_at":
                cells.append(_when(value))
            elif column in ("status", "product_kind", "channel"):
                cells.append(self.value_label(value, column, locale))
            else:
                cells.append(value or "")
        return cells

    # --- intake, on the staff member's behalf -----------------------------------------------------

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.intake_url, timeout=10, transport=self.transport)

    async def sign_in(self, hub: str, email: str, password: str, forwarded_for: str | None) -> str | None:
        headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
        async with self.client() as client:
            response = await client.post(
                "/v1/staff/sessions", json={"hub": hub, "email": email, "password": password}, headers=headers
            )
        if response.status_code in (400, 401, 422):
            return None
        response.raise_for_status()
        token: str = response.json()["token"]
        return token

    async def post_to_intake(
        self, staff: Staff, path: str, body: Mapping[str, Any], *, locale: str, idempotency_key: str | None = None
    ) -> httpx.Response:
        """A staff command, with the member's own token: intake authorises it as if they had sent it. With
        `idempotency_key`, the same form sent twice (a retry, a second click) is taken once."""
        headers = {"Authorization": f"Bearer {staff.token}", "Accept-Language": locale}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        async with self.client() as client:
            return await client.post(path, json=dict(body), headers=headers)


def spreadsheet_safe(cell: str) -> str:
    """A cell Excel would take for a formula (=, +, -, @, or a tab or return first: what an applicant typed
    could run on a staff member's machine) is written as text, behind an apostrophe (OWASP's advice)."""
    return f"'{cell}" if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell


def fiscal_label(year: int, locale: str) -> str:
    """2025 → 「2025年度」 / "FY2025"."""
    return i18n.translate(FISCAL_YEAR, locale, year=year)


def _when(value: datetime | None) -> str:
    """A moment as the hubs write it, in Japan time: 2026-04-01 09:30."""
    return value.astimezone(domain.JAPAN).strftime("%Y-%m-%d %H:%M") if value else ""


def _with_query(request: Request, **changes: str) -> str:
    params = dict(request.query_params)
    params.update(changes)
    return f"{request.url.path}?{urlencode(params)}"


def create_router(console: Console) -> APIRouter:
    router = APIRouter(prefix="/console", include_in_schema=False)

    @router.get("/")
    async def home() -> RedirectResponse:
        return RedirectResponse("/console/consultations", status_code=303)

    @router.get("/sign-in")
    async def sign_in_form(request: Request) -> HTMLResponse:
        return console.render(request, "console/sign_in.html", hubs=list(console.hubs.values()), error=None, form={})

    @router.post("/sign-in")
    async def sign_in(request: Request) -> Response:
        form = await request.form()
        values = {name: str(form.get(name, "")) for name in ("hub", "email", "password")}
        error = None
        token = None
        if values["hub"] not in console.hubs or not values["email"] or not values["password"]:
            error = SIGN_IN_REFUSED
        else:
            try:
                token = await console.sign_in(
                    values["hub"], values["email"], values["password"], request.client.host if request.client else None
                )
            except httpx.HTTPError:
                error = INTAKE_UNAVAILABLE
            if token is None and error is None:
                error = SIGN_IN_REFUSED
        if token is None:
            values.pop("password")
            return console.render(
                request,
                "console/sign_in.html",
                status=401,
                hubs=list(console.hubs.values()),
                error=error,
                form=values,
            )
        response = RedirectResponse("/console/consultations", status_code=303)
        response.set_cookie(
            COOKIE, token, httponly=True, samesite="strict", secure=console.secure_cookies, path="/console/"
        )
        return response

    @router.post("/sign-out")
    async def sign_out(request: Request) -> RedirectResponse:
        console.checked(request, await request.form())
        response = RedirectResponse("/console/sign-in", status_code=303)
        response.delete_cookie(COOKIE, path="/console/")
        return response

    @router.get("/consultations")
    async def consultations(request: Request) -> HTMLResponse:
        staff = console.staff(request)
        query = read_list_query(request, staff)
        async with console.sessions() as session:
            views = await repository.saved_views(session, staff.principal.hub, staff.principal.subject)
            page = await repository.search_consultations(
                session,
                staff.principal.hub,
                query.search,
                sort=query.sort,
                descending=query.descending,
                after=_parse_cursor(query.after, query.sort),
                limit=PAGE_SIZE,
            )
        locale = console.locale(request)
        partial = request.headers.get("HX-Request") == "true" and request.headers.get("HX-Target") == "results"
        return console.render(
            request,
            "console/_results.html" if partial else "console/list.html",
            staff=staff,
            query=query,
            queues=QUEUES,
            may_enter=staff.principal.may(auth.Action.ENTER),
            columns=COLUMNS,
            rows=[(row, console.cells(row, locale)) for row in page.rows],
            next_page=query.params(after=_cursor(page.next_after)) if page.next_after else None,
            vocabulary={"topic": list(SupportField), "product_kind": list(ProductKind), "channel": list(Channel)},
            views=views,
        )

    @router.get("/dashboard")
    async def dashboard(request: Request) -> HTMLResponse:
        staff = console.staff(request)
        locale = console.locale(request)
        hub = staff.principal.hub
        this_year = domain.fiscal_year(datetime.now(domain.JAPAN))
        async with console.sessions() as session:
            years = await repository.fiscal_years(session, hub)
            asked = request.query_params.get("year", "")
            year = (
                int(asked)
                if asked.isdigit() and int(asked) in years
                else (this_year if this_year in years or not years else years[0])
            )
            counts = await repository.count_year(session, hub, year)
            flow = await repository.funnel(session, hub, year)
        if year not in years:
            years = sorted({*years, year}, reverse=True)
        months = babel.dates.get_month_names("abbreviated", locale=locale)
        month_order = [4, 5, 6, 7, 8, 9, 10, 11, 12, 1, 2, 3]
        quarters = [0, 0, 0, 0]
        for month, count in counts.by_month.items():
            quarters[(month - 4) % 12 // 3] += count

        def labelled(column: str, values: Mapping[str, int]) -> list[tuple[str, int]]:
            items = [
                (console.value_label(value, column, locale) if value else i18n.translate(NOT_GIVEN, locale), count)
                for value, count in values.items()
            ]
            return sorted(items, key=lambda item: (-item[1], item[0]))

        def spread(times: list[tuple[datetime, datetime]]) -> domain.Spread:
            return domain.spread(domain.business_days(start, end) for start, end in times)

        timings = [
            (i18n.translate(TO_SCREENING, locale), spread(flow.screening_times)),
            (i18n.translate(TO_FIRST_CONTACT, locale), spread(flow.first_contact_times)),
            (i18n.translate(TO_MATCH, locale), spread(flow.match_times)),
        ]
        return console.render(
            request,
            "console/dashboard.html",
            staff=staff,
            years=years,
            counts=counts,
            year_label=fiscal_label(year, locale),
            fiscal_label=lambda one: fiscal_label(one, locale),
            timings=timings,
            months=[(months[m], counts.by_month.get(m, 0)) for m in month_order],
            quarters=[(i18n.translate(QUARTER, locale, number=n + 1), quarters[n]) for n in range(4)],
            topics=[(i18n.label(topic, locale), counts.topics.get(topic.value, 0)) for topic in SupportField],
            funnel=[
                (i18n.translate(label, locale), number)
                for label, number in zip(
                    FUNNEL, (flow.submitted, flow.screened, flow.matched, flow.meeting, flow.closed), strict=True
                )
            ],
            dimensions=[
                (name, i18n.translate(title, locale), labelled(name, counts.dimensions[name]))
                for name, title in DIMENSIONS
            ],
        )

    @router.post("/views")
    async def save_view(request: Request) -> Response:
        """Save the list as it stands (its search and order) under a name, for this member only."""
        form = await request.form()
        staff = console.checked(request, form)
        name = " ".join(str(form.get("name", "")).split())[:100]
        query = str(form.get("query", ""))[:2000].lstrip("?")
        if name:
            async with console.sessions.begin() as session:
                await repository.save_view(
                    session, hub=staff.principal.hub, owner=staff.principal.subject, name=name, query=query
                )
        return RedirectResponse(f"/console/consultations?{query}", status_code=303)

    @router.post("/views/{view_id}/deletion")
    async def delete_view(request: Request, view_id: str) -> Response:
        form = await request.form()
        staff = console.checked(request, form)
        try:
            wanted = uuid.UUID(view_id)
        except ValueError:
            wanted = None
        if wanted is not None:
            async with console.sessions.begin() as session:
                await repository.delete_view(
                    session, hub=staff.principal.hub, owner=staff.principal.subject, view_id=wanted
                )
        return RedirectResponse("/console/consultations", status_code=303)

    @router.get("/consultations.csv")
    async def export(request: Request) -> StreamingResponse:
        staff = console.staff(request)
        query = read_list_query(request, staff)
        locale = console.locale(request)
        shift_jis = request.query_params.get("encoding") == "shift_jis"
        encoding = "cp932" if shift_jis else "utf-8"

        async def lines() -> AsyncIterator[bytes]:
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\r\n")
            writer.writerow([i18n.translate(label, locale) for _, label in COLUMNS])
            yield ("" if shift_jis else "\ufeff").encode() + buffer.getvalue().encode(encoding, errors="replace")
            async with console.sessions() as session:
                rows = await repository.all_matching(
                    session, staff.principal.hub, query.search, sort=query.sort, descending=query.descending
                )
                async for row in rows:
                    buffer.seek(0)
                    buffer.truncate()
                    writer.writerow([spreadsheet_safe(cell) for cell in console.cells(row, locale)])
                    yield buffer.getvalue().encode(encoding, errors="replace")

        name = f"consultations-{staff.principal.hub}-{datetime.now(domain.JAPAN).date().isoformat()}.csv"
        return StreamingResponse(
            lines(),
            media_type=f"text/csv; charset={'Shift_JIS' if shift_jis else 'utf-8'}",
            headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
        )

    @router.get("/consultations/{consultation_id}")
    async def record(request: Request, consultation_id: str) -> HTMLResponse:
        staff = console.staff(request)
        found = await _record(console, staff, consultation_id)
        if found is None:
            # Just entered, not yet projected: it is on its way (the page says so and looks again).
            on_its_way = request.query_params.get("notice") == "entered_pending"
            status = 200 if on_its_way else 404
            return console.render(request, "console/not_found.html", status=status, staff=staff, on_its_way=on_its_way)
        tab = request.query_params.get("tab", "consultation")
        tab = tab if tab in dict(TABS) or tab == "all" else "consultation"
        return _record_page(console, request, staff, found, tab=tab, notice=request.query_params.get("notice"))

    @router.get("/entries/new")
    async def entry_form(request: Request) -> HTMLResponse:
        staff = console.staff(request)
        return _entry_page(console, request, staff, {}, [])

    @router.post("/entries")
    async def enter(request: Request) -> Response:
        form = await request.form()
        staff = console.checked(request, form)
        locale = console.locale(request)
        key = str(form.get("idempotency_key", ""))
        try:
            answer = await console.post_to_intake(
                staff,
                f"/v1/hubs/{staff.principal.hub}/entries",
                entry_body(form),
                locale=locale,
                idempotency_key=key if _is_uuid(key) else None,
            )
        except httpx.HTTPError:
            answer = None
        if answer is None or answer.status_code >= 300:
            problems = _field_problems(answer)
            status = answer.status_code if answer is not None and answer.status_code < 500 else 503
            problem = _problem(answer, locale)
            return _entry_page(console, request, staff, form, problems, problem=problem, status=status)
        consultation_id = uuid.UUID(answer.json()["consultation_id"])
        seen = await _wait_for(console, staff, consultation_id, lambda _: True)
        notice = "entered_done" if seen else "entered_pending"
        return RedirectResponse(f"/console/consultations/{consultation_id}?notice={notice}", status_code=303)

    @router.post("/consultations/{consultation_id}/screening")
    async def screen(request: Request, consultation_id: str) -> Response:
        def body(form: Mapping[str, Any]) -> dict[str, Any]:
            decision = str(form.get("decision", ""))
            if decision == ScreeningDecision.OUT_OF_SCOPE.value:
                return {"decision": decision, "reason": str(form.get("reason", ""))}
            return {"decision": decision}

        return await _command(
            console, request, consultation_id, "screening", body, lambda _, now: now.view.screened_at is not None
        )

    @router.post("/consultations/{consultation_id}/notes")
    async def note(request: Request, consultation_id: str) -> Response:
        def body(form: Mapping[str, Any]) -> dict[str, Any]:
            return {"text": str(form.get("text", "")), "awaits_applicant": form.get("awaits_applicant") == "yes"}

        def seen(before: repository.ConsultationRecord, now: repository.ConsultationRecord) -> bool:
            return _notes(now) > _notes(before)

        return await _command(console, request, consultation_id, "notes", body, seen)

    @router.post("/consultations/{consultation_id}/closure")
    async def close(request: Request, consultation_id: str) -> Response:
        return await _command(
            console,
            request,
            consultation_id,
            "closure",
            lambda form: {"outcome": str(form.get("outcome", ""))},
            lambda _, now: now.view.closed_at is not None,
        )

    return router


def _record_page(
    console: Console,
    request: Request,
    staff: Staff,
    found: repository.ConsultationRecord,
    *,
    tab: str,
    notice: str | None = None,
    problem: str | None = None,
    status: int = 200,
    form: Mapping[str, Any] | None = None,
) -> HTMLResponse:
    """The record at one tab, with the actions the member may take, and a notice or a problem (with what
    the member had typed in `form`)."""
    return console.render(
        request,
        "console/record.html",
        status=status,
        staff=staff,
        record=found,
        tab=tab,
        tabs=TABS,
        event_labels=EVENT_LABELS,
        decisions=list(ScreeningDecision),
        reasons=list(OutOfScopeReason),
        may={action: staff.principal.may(permission) for action, permission in ACTIONS.items()},
        outcomes=list(Outcome),
        notice=notice,
        problem=problem,
        form=form or {},
    )


ENTRY_TEXT: Final = (
    "organization",
    "corporate_number",
    "title",
    "product_name",
    "family_name",
    "given_name",
    "family_name_kana",
    "given_name_kana",
    "email",
    "phone",
    "body",
)
ENTRY_LABELS: Final = {
    "channel": N_("How it was received"),
    "slot_day": N_("Open Hours day"),
    "organization": N_("Organisation"),
    "corporate_number": N_("Corporate number"),
    "applicant_kind": N_("Applicant kind"),
    "prefecture": N_("Prefecture"),
    "family_name": N_("Family name"),
    "given_name": N_("Given name"),
    "family_name_kana": N_("Family name (katakana)"),
    "given_name_kana": N_("Given name (katakana)"),
    "email": N_("Email"),
    "phone": N_("Phone"),
    "language": N_("Language"),
    "title": N_("Subject"),
    "product_name": N_("Product"),
    "product_kind": N_("Product kind"),
    "development_stage": N_("Development stage"),
    "topics": N_("Topics"),
    "body": N_("What they asked"),
}
"""The entry form's fields and their labels (the error summary names each field it lists)."""
ENTRY_CHOICES: Final = ("channel", "language", "applicant_kind", "prefecture", "product_kind", "development_stage")
ENTRY_CHANNELS: Final = (Channel.PHONE, Channel.EMAIL, Channel.EVENT, Channel.OPEN_HOURS)
OPEN_HOURS_TIMES: Final = ("10:00", "11:00")


def entry_body(form: Mapping[str, Any]) -> dict[str, Any]:
    """Intake's staff entry from the console's form: what was filled in, as intake takes it (an Open Hours slot
    is the day and the hour in Japan time); intake says what is missing or wrong, field by field."""
    body: dict[str, Any] = {}
    for name in (*ENTRY_TEXT, *ENTRY_CHOICES):
        if value := str(form.get(name, "")).strip():
            body[name] = value
    getlist = getattr(form, "getlist", None)
    topics = [str(topic) for topic in getlist("topics")] if getlist is not None else []
    if topics:
        body["topics"] = topics
    if body.get("channel") == Channel.OPEN_HOURS.value:
        day, hour = str(form.get("slot_day", "")), str(form.get("slot_time", ""))
        if day and hour in OPEN_HOURS_TIMES:
            body["open_hours_slot"] = f"{day}T{hour}:00+09:00"
    return body


def _field_problems(answer: httpx.Response | None) -> list[tuple[str, str]]:
    """(field, message) of a refusal, in the member's language; the slot's under the day it was asked on."""
    if answer is None or answer.status_code != 422:
        return []
    try:
        fields = answer.json().get("fields") or []
    except ValueError:
        return []
    found = []
    for item in fields:
        name = str(item.get("field", "")).split(".")[0]
        found.append(("slot_day" if name == "open_hours_slot" else name, str(item.get("message", ""))))
    return found


def _entry_page(
    console: Console,
    request: Request,
    staff: Staff,
    form: Mapping[str, Any],
    problems: list[tuple[str, str]],
    *,
    problem: str | None = None,
    status: int = 200,
    notice: str | None = None,
) -> HTMLResponse:
    getlist = getattr(form, "getlist", None)
    return console.render(
        request,
        "console/entry.html",
        status=status,
        staff=staff,
        form=form,
        chosen_topics=set(getlist("topics")) if getlist is not None else set(),
        problems=problems,
        errors=dict(reversed(problems)),
        # One per form shown, kept when the form comes back with problems: the same entry sent twice is one.
        idempotency_key=str(form.get("idempotency_key", "")) or str(uuid.uuid4()),
        problem=problem if problems == [] else None,
        notice=notice,
        may_enter=staff.principal.may(auth.Action.ENTER),
        labels=ENTRY_LABELS,
        channels=ENTRY_CHANNELS,
        times=OPEN_HOURS_TIMES,
        languages=list(Language),
        applicant_kinds=list(ApplicantKind),
        prefectures=list(Prefecture),
        product_kinds=list(ProductKind),
        stages=list(DevelopmentStage),
        topics=list(SupportField),
    )


ACTIONS: Final = {"screening": auth.Action.SCREEN, "notes": auth.Action.NOTE, "closure": auth.Action.CLOSE}
"""The record's actions: the path of intake's command, and what the member must be allowed."""


def _notes(record: repository.ConsultationRecord) -> int:
    return sum(entry.event_type == NoteAdded.event_type for entry in record.timeline)


async def _command(
    console: Console,
    request: Request,
    consultation_id: str,
    action: str,
    body: Callable[[Mapping[str, Any]], dict[str, Any]],
    seen: Callable[[repository.ConsultationRecord, repository.ConsultationRecord], bool],
) -> Response:
    """Post one of the record's actions to intake with the member's token; then read your writes: wait
    (bounded) until the projection shows it and say so, or say it is on its way. A refusal is shown on
    the record, in the member's language, with what they typed kept."""
    form = await request.form()
    staff = console.checked(request, form)
    found = await _record(console, staff, consultation_id)
    if found is None:
        return console.render(request, "console/not_found.html", status=404, staff=staff)
    try:
        answer = await console.post_to_intake(
            staff,
            f"/v1/hubs/{staff.principal.hub}/consultations/{found.view.id}/{action}",
            body(form),
            locale=console.locale(request),
        )
    except httpx.HTTPError:
        answer = None
    if answer is None or answer.status_code >= 300:
        return _record_page(
            console,
            request,
            staff,
            found,
            tab="progress",
            problem=_problem(answer, console.locale(request)),
            status=answer.status_code if answer is not None and answer.status_code < 500 else 503,
            form=form,
        )
    done = await _wait_for(console, staff, found.view.id, lambda now: seen(found, now))
    notice = f"{action}_{'done' if done else 'pending'}"
    return RedirectResponse(f"/console/consultations/{found.view.id}?tab=progress&notice={notice}", status_code=303)


def _problem(answer: httpx.Response | None, locale: str) -> str:
    """What went wrong, in `locale`: intake's own message (it answered in the member's language), or ours."""
    if answer is None or answer.status_code >= 500:
        return i18n.translate(INTAKE_UNAVAILABLE, locale)
    if answer.status_code == 403:
        return i18n.translate(NOT_ALLOWED, locale)
    try:
        message = answer.json().get("message")
    except ValueError:
        message = None
    return str(message) if message else i18n.translate(INTAKE_UNAVAILABLE, locale)


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


async def _record(console: Console, staff: Staff, consultation_id: str) -> repository.ConsultationRecord | None:
    try:
        wanted = uuid.UUID(consultation_id)
    except ValueError:
        return None
    async with console.sessions() as session:
        return await repository.get_by_id(session, staff.principal.hub, wanted)


async def _wait_for(
    console: Console,
    staff: Staff,
    consultation_id: uuid.UUID,
    done: Callable[[repository.ConsultationRecord], bool],
) -> bool:
    deadline = time.monotonic() + READ_TIMEOUT_S
    while time.monotonic() < deadline:
        async with console.sessions() as session:
            found = await repository.get_by_id(session, staff.principal.hub, consultation_id)
        if found is not None and done(found):
            return True
        await asyncio.sleep(0.05)
    return False


def install(app: FastAPI, console: Console, *, vendor_dir: Path) -> None:
    """The console's routes, its static files, and the redirect to sign-in for a page without a session."""

    async def sign_in_needed(request: Request, _: Exception) -> Response:
        if request.headers.get("HX-Request") == "true":
            return Response(status_code=204, headers={"HX-Redirect": "/console/sign-in"})
        return RedirectResponse("/console/sign-in", status_code=303)

    app.add_exception_handler(SignInNeeded, sign_in_needed)
    app.include_router(create_router(console))
    app.mount("/console/static/vendor", StaticFiles(directory=vendor_dir, check_dir=False), name="console-vendor")
    app.mount("/console/static", StaticFiles(directory=STATIC_DIR), name="console-static")
