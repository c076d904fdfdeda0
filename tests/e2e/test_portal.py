"""The portal as an applicant uses it, in Chromium through the gateway: form → confirmation → completion,
the applicant's own page, withdrawal; every error at its field; axe-core on every page and state."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from email.message import Message
from typing import Any

import httpx
import pytest
from playwright.async_api import FilePayload, Locator, Page, expect

from services.intake import domain
from shared import i18n
from shared.contract.vocabulary import ApplicantKind, DevelopmentStage, MeetingFormat, ProductKind, SupportField
from tests.e2e.browser import check_page
from tests.e2e.conftest import Stack
from tests.support import wait_for

HUB = "pmda"  # a hub no other e2e test submits to
MIN_FILL_S = 4.2  # intake's portal_min_fill_s, and a little more
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def t(message: str, locale: str, **params: Any) -> str:
    return i18n.translate(message, locale, **params)


def labelled(page: Page, label: str) -> Locator:
    """The control whose label is `label`, with or without its 必須/任意 mark."""
    return page.get_by_label(re.compile(rf"^{re.escape(label)}(\s+\S+)?$"))


async def open_form(page: Page, stack: Stack, locale: str) -> float:
    suffix = "" if locale == "ja" else f"?lang={locale}"
    await page.goto(f"{stack.origin}/portal/{HUB}{suffix}")
    return time.monotonic()


async def fill_form(page: Page, locale: str, *, title: str, email: str) -> None:
    await page.get_by_label(i18n.label(ApplicantKind.STARTUP, locale), exact=True).check()
    await labelled(page, t("Organisation name", locale)).fill("株式会社ケアテック試験")
    await labelled(page, t("Corporate number (法人番号)", locale)).fill("7000012050002")
    await labelled(page, t("Prefecture", locale)).select_option("13")
    await labelled(page, t("Family name", locale)).fill("山田")
    await labelled(page, t("Given name", locale)).fill("花子")
    await labelled(page, t("Family name in katakana", locale)).fill("ヤマダ")
    await labelled(page, t("Given name in katakana", locale)).fill("ハナコ")
    await labelled(page, t("Email address", locale)).fill(email)
    await labelled(page, t("Phone number", locale)).fill("03-1234-5678")
    await labelled(page, t("Product name", locale)).fill("見守りセンサー")
    await labelled(page, t("Kind of product", locale)).select_option(ProductKind.CARE_TECH.value)
    await labelled(page, t("Development stage", locale)).select_option(DevelopmentStage.NON_CLINICAL.value)
    await page.get_by_label(i18n.label(SupportField.REGULATION, locale), exact=True).check()
    await page.get_by_label(i18n.label(SupportField.FUNDRAISING, locale), exact=True).check()
    await labelled(page, t("Summary of your consultation", locale)).fill(title)
    await labelled(page, t("Details of your consultation", locale)).fill(
        "介護施設向けの見守りセンサーを開発しています。\n実証の進め方を相談したいです。"
    )
    await page.get_by_label(i18n.label(MeetingFormat.ONLINE, locale), exact=True).check()
    await labelled(page, t("Co-researcher 1: name", locale)).fill("佐藤 一郎")
    await labelled(page, t("Co-researcher 1: affiliation", locale)).fill("東京介護大学")
    await labelled(page, t("Files", locale)).set_input_files(
        files=[FilePayload(name="事業概要.pdf", mimeType="application/pdf", buffer=PDF)]
    )
    await page.get_by_label("MEDISO", exact=False).first.check()


async def wait_fill_time(opened: float) -> None:
    await asyncio.sleep(max(0.0, MIN_FILL_S - (time.monotonic() - opened)))


async def in_reporting(http: httpx.AsyncClient, stack: Stack, title: str) -> dict[str, Any]:
    async def listed() -> dict[str, Any] | None:
        answer = await http.get(f"{stack.origin}/v1/hubs/{HUB}/consultations?limit=100", headers=stack.staff(HUB))
        return next((item for item in answer.json() if item["title"] == title), None)

    return await wait_for(listed, timeout=15, what=f"'{title}' in reporting")


@pytest.mark.parametrize("locale", ["ja", "en"])
async def test_applicant_submits_through_form_confirmation_and_completion_and_it_reaches_reporting(
    page: Page, stack: Stack, http: httpx.AsyncClient, locale: str
) -> None:
    title = f"実証の進め方 {uuid.uuid4().hex[:8]}"
    opened = await open_form(page, stack, locale)
    await expect(page.get_by_role("heading", level=1)).to_have_text(t("Consultation form", locale))
    await check_page(page, f"portal-form-{locale}")
    await fill_form(page, locale, title=title, email=f"portal-{uuid.uuid4().hex[:8]}@example.jp")
    await wait_fill_time(opened)
    await page.get_by_role("button", name=t("Check your entries", locale)).click()

    await expect(page.get_by_role("heading", level=1)).to_have_text(t("Check your entries", locale))
    record = page.locator("dl.record")
    await expect(record).to_contain_text("株式会社ケアテック試験")
    await expect(record).to_contain_text("7000012050002")
    await expect(record).to_contain_text(title)
    await expect(record).to_contain_text("ヤマダ ハナコ")
    await expect(page.get_by_text("事業概要.pdf")).to_be_visible()
    await check_page(page, f"portal-confirm-{locale}")
    await page.get_by_role("button", name=t("Send the consultation", locale)).click()

    await expect(page.get_by_role("heading", level=1)).to_have_text(t("Consultation received", locale))
    reference = await page.locator("#reference").inner_text()
    assert re.fullmatch(rf"{HUB.upper()}-[0-9A-HJKMNP-TV-Z]{{5}}-[0-9A-HJKMNP-TV-Z]{{5}}", reference)
    await check_page(page, f"portal-received-{locale}")

    await page.locator(".secret-link a").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(t("Your consultation", locale))
    await expect(page.locator("#status")).to_have_text(t("Received", locale))
    await expect(page.locator("#reference")).to_have_text(reference)
    await expect(page.get_by_text("事業概要.pdf")).to_be_visible()
    await check_page(page, f"portal-applicant-{locale}")

    listed = await in_reporting(http, stack, title)
    assert listed["organization"] == "株式会社ケアテック試験"
    assert listed["language"] == locale

    # The acknowledgement gives the reference and the same page, by its own link.
    async def mailed() -> list[Message]:
        return stack.mail.about(listed["id"])

    [mail] = await wait_for(mailed, timeout=15, what="the acknowledgement email")
    payload = mail.get_payload(decode=True)
    assert isinstance(payload, bytes)
    body = payload.decode(mail.get_content_charset() or "utf-8")
    assert reference in body
    [link] = re.findall(r"^https?://\S+/portal/my/\S+$", body, flags=re.MULTILINE)
    await page.goto(link)
    await expect(page.locator("#reference")).to_have_text(reference)


@pytest.mark.parametrize("locale", ["ja", "en"])
async def test_invalid_submission_shows_every_error_at_its_field_in_the_page_language(
    page: Page, stack: Stack, locale: str
) -> None:
    opened = await open_form(page, stack, locale)
    await labelled(page, t("Corporate number (法人番号)", locale)).fill("1234567890123")
    await labelled(page, t("Family name in katakana", locale)).fill("やまだ")
    await labelled(page, t("Email address", locale)).fill("not-an-address")
    await labelled(page, t("Phone number", locale)).fill("call me")
    await wait_fill_time(opened)
    await page.get_by_role("button", name=t("Check your entries", locale)).click()

    summary = page.locator("#error-summary")
    await expect(summary).to_be_visible()
    await expect(summary).to_be_focused()
    required = t("This field is required", locale)
    expected = {
        "applicant_kind": required,
        "organization": required,
        "corporate_number": t("This is not a valid 13-digit corporate number", locale),
        "family_name": required,
        "family_name_kana": t("Write the reading in full-width katakana", locale),
        "email": t("Enter a valid email address", locale),
        "phone": t("Enter a phone number: digits, with hyphens, spaces or a leading + if you like", locale),
        "product_kind": required,
        "development_stage": required,
        "topics": t("Choose at least %(min_length)s", locale, min_length=1),
        "title": required,
        "body": required,
    }
    for name, message in expected.items():
        error = page.locator(f"#f-{name}-error")
        await expect(error).to_be_visible()
        await expect(error).to_contain_text(message)
        # The control (or its group) points at its error; the summary links to the control.
        described = page.locator(f"[aria-describedby~='f-{name}-error']")
        await expect(described).to_have_count(1)
        await expect(summary.locator(f"a[href='#f-{name}'], a[href='#f-{name}-1']")).to_have_count(1)
    # What was typed is kept, so that only the errors need correcting.
    await expect(labelled(page, t("Corporate number (法人番号)", locale))).to_have_value("1234567890123")
    await expect(page.locator("html")).to_have_attribute("lang", locale)
    await check_page(page, f"portal-errors-{locale}")


async def test_applicant_withdraws_from_their_page_and_the_status_says_so(
    page: Page, stack: Stack, http: httpx.AsyncClient
) -> None:
    locale = "en"
    title = f"Withdrawal check {uuid.uuid4().hex[:8]}"
    opened = await open_form(page, stack, locale)
    await fill_form(page, locale, title=title, email=f"withdraw-{uuid.uuid4().hex[:8]}@example.jp")
    await wait_fill_time(opened)
    await page.get_by_role("button", name=t("Check your entries", locale)).click()
    await page.get_by_role("button", name=t("Send the consultation", locale)).click()
    await page.locator(".secret-link a").click()

    # The applicant adds a note and a file, then withdraws their consent to sharing with MEDISO.
    await labelled(page, t("What you would like to add", locale)).fill("The revised protocol is attached.")
    await labelled(page, t("Files", locale)).set_input_files(
        files=[FilePayload(name="protocol-v2.pdf", mimeType="application/pdf", buffer=PDF)]
    )
    await page.get_by_role("button", name=t("Send to the hub", locale)).click()
    await expect(page.get_by_role("status")).to_contain_text(
        t("Thank you. What you added has been sent to the hub.", locale)
    )
    await expect(page.get_by_text("protocol-v2.pdf")).to_be_visible()
    await check_page(page, "portal-supplemented-en")
    sharing = page.get_by_role("group", name=re.compile(t("Sharing with other hubs", locale)))
    await sharing.get_by_label("MEDISO", exact=False).uncheck()
    await page.get_by_role("button", name=t("Save consent", locale)).click()
    await expect(page.get_by_role("status")).to_contain_text(t("Your consent settings have been saved.", locale))
    await expect(sharing.get_by_label("MEDISO", exact=False)).not_to_be_checked()

    await page.get_by_role("link", name=t("Withdraw…", locale)).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(t("Withdraw the consultation", locale))
    await check_page(page, "portal-withdraw-confirm-en")
    await page.get_by_role("button", name=t("Withdraw", locale), exact=True).click()

    await expect(page.locator("#status")).to_have_text(t("Withdrawn", locale))
    await expect(page.get_by_role("status")).to_contain_text(t("Your consultation has been withdrawn.", locale))
    await expect(page.get_by_role("link", name=t("Withdraw…", locale))).to_have_count(0)
    await check_page(page, "portal-withdrawn-en")

    listed = await in_reporting(http, stack, title)

    async def withdrawn() -> bool:
        answer = await http.get(f"{stack.origin}/v1/hubs/{HUB}/consultations/{listed['id']}", headers=stack.staff(HUB))
        return bool(answer.json()["status"] == domain.Status.WITHDRAWN.value)

    await wait_for(withdrawn, timeout=15, what="the withdrawal in reporting")


async def test_form_sent_too_quickly_is_shown_again_and_a_filled_honeypot_is_refused(page: Page, stack: Stack) -> None:
    locale = "ja"
    await open_form(page, stack, locale)
    await fill_form(page, locale, title="早すぎる送信", email="quick@example.jp")
    await page.get_by_role("button", name=t("Check your entries", locale)).click()
    await expect(page.locator("#error-summary")).to_contain_text(
        t("The form was sent very quickly. Please check your entries and send it again.", locale)
    )
    await expect(labelled(page, t("Summary of your consultation", locale))).to_have_value("早すぎる送信")
    await check_page(page, "portal-too-quick-ja")

    opened = await open_form(page, stack, locale)
    await fill_form(page, locale, title="ボット", email="bot@example.jp")
    await page.locator("#f-website").fill("http://spam.example")
    await wait_fill_time(opened)
    await page.get_by_role("button", name=t("Check your entries", locale)).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(t("We could not continue", locale))
