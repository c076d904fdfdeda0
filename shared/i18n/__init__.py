"""Everything a person reads, in Japanese and English, from the Babel catalogs beside this module.

The msgids are the English wording, marked where they stand: `N_("...")` in tables, the third
argument of `http.Problem`, the first of `http.not_found`, `{% trans %}` blocks and `_()` in
templates. `locales/ja` translates every one of them; `locales/en` lists them too and may reword one
without touching the code (an empty msgstr means the msgid as written). Placeholders are
`%(name)s`, always formatted, so a literal percent sign is written `%%`. `make i18n` extracts the
msgids and updates both catalogs; the `.po` files are read at first use, so nothing is compiled.
"""

from __future__ import annotations

import functools
import gettext
import io
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import babel
import jinja2
from babel.lists import format_list
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

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

LOCALES: tuple[str, ...] = ("ja", "en")
DEFAULT_LOCALE = "ja"
LOCALES_DIR = Path(__file__).parent / "locales"
DOMAIN = "messages"


def N_(message: str) -> str:
    """Marks a msgid for extraction where it is stored rather than translated (tables, defaults)."""
    return message


# The labels of the contract's vocabulary (the hubs' own terms), by enum: the contract keeps only
# the values, and two enums may share a value ("other").
LABELS: dict[type[StrEnum], dict[StrEnum, str]] = {
    Language: {
        Language.JA: N_("Japanese"),
        Language.EN: N_("English"),
    },
    Channel: {
        Channel.PORTAL: N_("Portal"),
        Channel.API: N_("API"),
        Channel.PHONE: N_("Phone"),
        Channel.EMAIL: N_("Email"),
        Channel.EVENT: N_("Event"),
        Channel.OPEN_HOURS: N_("Open Hours"),
    },
    ApplicantKind: {
        ApplicantKind.STARTUP: N_("Startup"),
        ApplicantKind.ACADEMIA: N_("Academia"),
        ApplicantKind.INDIVIDUAL_RESEARCHER: N_("Individual researcher"),
        ApplicantKind.SME: N_("SME"),
        ApplicantKind.LARGE_COMPANY: N_("Large company"),
        ApplicantKind.INVESTOR: N_("Investor"),
        ApplicantKind.OTHER: N_("Other"),
    },
    ProductKind: {
        ProductKind.DRUG: N_("Drug"),
        ProductKind.MEDICAL_DEVICE: N_("Medical device"),
        ProductKind.REGENERATIVE: N_("Regenerative-medicine product"),
        ProductKind.SAMD: N_("Software as a medical device"),
        ProductKind.CARE_TECH: N_("Care tech"),
        ProductKind.MEDICAL_DX_AI: N_("Medical DX / AI"),
        ProductKind.DIAGNOSTICS: N_("Diagnostics"),
        ProductKind.HEALTHCARE_SERVICE: N_("Healthcare service"),
        ProductKind.OTHER: N_("Other"),
    },
    DevelopmentStage: {
        DevelopmentStage.BASIC_RESEARCH: N_("Basic research"),
        DevelopmentStage.APPLIED_RESEARCH: N_("Applied research"),
        DevelopmentStage.NON_CLINICAL: N_("Non-clinical"),
        DevelopmentStage.CLINICAL: N_("Clinical research / trials"),
        DevelopmentStage.COMMERCIALISATION: N_("Commercialisation"),
        DevelopmentStage.BUSINESS_EXPANSION: N_("Business expansion"),
    },
    MeetingFormat: {
        MeetingFormat.ONLINE: N_("Online"),
        MeetingFormat.IN_PERSON: N_("In person"),
        MeetingFormat.OPEN_HOURS: N_("Open Hours (weekdays 10:00 or 11:00, no documents needed)"),
    },
    ScreeningDecision: {
        ScreeningDecision.ACCEPTED: N_("Accepted for handling"),
        ScreeningDecision.OUT_OF_SCOPE: N_("Out of scope"),
    },
    OutOfScopeReason: {
        OutOfScopeReason.NOT_HEALTHCARE: N_("Not a healthcare matter"),
        OutOfScopeReason.BETTER_AT_ANOTHER_HUB: N_("Better handled by another hub"),
        OutOfScopeReason.INSUFFICIENT_INFORMATION: N_("Not enough information"),
        OutOfScopeReason.NOT_SUPPORT_SCOPE: N_("Outside the support this hub offers"),
        OutOfScopeReason.OTHER: N_("Other"),
    },
    Outcome: {
        Outcome.ADVICE_GIVEN: N_("Advice given"),
        Outcome.MATCHED_WITH_EXPERT: N_("Matched with an expert"),
        Outcome.REFERRED: N_("Referred to another hub"),
        Outcome.NO_RESPONSE: N_("No response from the applicant"),
        Outcome.OTHER: N_("Other"),
    },
    # TRANSLATORS: the prefectures' names, as an address writes them (北海道, 東京都, 京都府, 青森県).
    Prefecture: {
        Prefecture.HOKKAIDO: N_("Hokkaido"),
        Prefecture.AOMORI: N_("Aomori"),
        Prefecture.IWATE: N_("Iwate"),
        Prefecture.MIYAGI: N_("Miyagi"),
        Prefecture.AKITA: N_("Akita"),
        Prefecture.YAMAGATA: N_("Yamagata"),
        Prefecture.FUKUSHIMA: N_("Fukushima"),
        Prefecture.IBARAKI: N_("Ibaraki"),
        Prefecture.TOCHIGI: N_("Tochigi"),
        Prefecture.GUNMA: N_("Gunma"),
        Prefecture.SAITAMA: N_("Saitama"),
        Prefecture.CHIBA: N_("Chiba"),
        Prefecture.TOKYO: N_("Tokyo"),
        Prefecture.KANAGAWA: N_("Kanagawa"),
        Prefecture.NIIGATA: N_("Niigata"),
        Prefecture.TOYAMA: N_("Toyama"),
        Prefecture.ISHIKAWA: N_("Ishikawa"),
        Prefecture.FUKUI: N_("Fukui"),
        Prefecture.YAMANASHI: N_("Yamanashi"),
        Prefecture.NAGANO: N_("Nagano"),
        Prefecture.GIFU: N_("Gifu"),
        Prefecture.SHIZUOKA: N_("Shizuoka"),
        Prefecture.AICHI: N_("Aichi"),
        Prefecture.MIE: N_("Mie"),
        Prefecture.SHIGA: N_("Shiga"),
        Prefecture.KYOTO: N_("Kyoto"),
        Prefecture.OSAKA: N_("Osaka"),
        Prefecture.HYOGO: N_("Hyogo"),
        Prefecture.NARA: N_("Nara"),
        Prefecture.WAKAYAMA: N_("Wakayama"),
        Prefecture.TOTTORI: N_("Tottori"),
        Prefecture.SHIMANE: N_("Shimane"),
        Prefecture.OKAYAMA: N_("Okayama"),
        Prefecture.HIROSHIMA: N_("Hiroshima"),
        Prefecture.YAMAGUCHI: N_("Yamaguchi"),
        Prefecture.TOKUSHIMA: N_("Tokushima"),
        Prefecture.KAGAWA: N_("Kagawa"),
        Prefecture.EHIME: N_("Ehime"),
        Prefecture.KOCHI: N_("Kochi"),
        Prefecture.FUKUOKA: N_("Fukuoka"),
        Prefecture.SAGA: N_("Saga"),
        Prefecture.NAGASAKI: N_("Nagasaki"),
        Prefecture.KUMAMOTO: N_("Kumamoto"),
        Prefecture.OITA: N_("Oita"),
        Prefecture.MIYAZAKI: N_("Miyazaki"),
        Prefecture.KAGOSHIMA: N_("Kagoshima"),
        Prefecture.OKINAWA: N_("Okinawa"),
    },
    SupportField: {
        SupportField.REGULATION: N_("Regulation"),
        SupportField.MARKETING: N_("Marketing"),
        SupportField.BUSINESS_PLANNING: N_("Business planning"),
        SupportField.FUNDRAISING: N_("Fundraising"),
        SupportField.MANAGEMENT_STRATEGY: N_("Management strategy"),
        SupportField.IP_STRATEGY: N_("IP strategy"),
        SupportField.INTERNATIONAL_EXPANSION: N_("International expansion"),
        SupportField.REIMBURSEMENT: N_("Reimbursement"),
        SupportField.DEVICE_APPLICABILITY: N_("Is it a medical device?"),
        SupportField.DEVELOPMENT_ADVICE: N_("Development advice"),
    },
}


@dataclass(frozen=True, slots=True)
class Translator:
    """One locale's wording: messages, vocabulary labels, lists."""

    locale: str
    translations: gettext.NullTranslations

    def gettext(self, message: str, /, **params: Any) -> str:
        return self.translations.gettext(message) % params

    def ngettext(self, singular: str, plural: str, n: int, /, **params: Any) -> str:
        return self.translations.ngettext(singular, plural, n) % {"num": n, **params}

    def label(self, value: StrEnum) -> str:
        return self.translations.gettext(LABELS[type(value)][value])

    def labels(self, values: Iterable[StrEnum]) -> str:
        """The labels as one list in the locale's style: "A, B, and C" / "A、B、C"."""
        return format_list([self.label(value) for value in values], style="standard", locale=self.locale)


@functools.cache
def translator(locale: str) -> Translator:
    """The translator of one of `LOCALES` (KeyError for any other: negotiate first); one per locale."""
    if locale not in LOCALES:
        raise KeyError(f"no catalog for locale {locale!r}; known: {', '.join(LOCALES)}")
    return Translator(locale, _translations(locale))


def translate(message: str, locale: str, /, **params: Any) -> str:
    return translator(locale).gettext(message, **params)


def in_every_locale(message: str, /, **params: Any) -> dict[str, str]:
    """The message in each locale, e.g. `{"ja": ..., "en": ...}` for a bilingual answer."""
    return {locale: translate(message, locale, **params) for locale in LOCALES}


def label(value: StrEnum, locale: str) -> str:
    """A vocabulary value's label, e.g. `label(SupportField.REGULATION, "ja")`; a stored string is
    converted first (`SupportField(value)`), since two enums may share a value."""
    return translator(locale).label(value)


def negotiate(accept_language: str | None) -> str:
    """The best of `LOCALES` for an Accept-Language header, honouring q-values; `DEFAULT_LOCALE` otherwise."""
    ranges = _language_ranges(accept_language or "")
    return babel.negotiate_locale(ranges, LOCALES, sep="-") or DEFAULT_LOCALE


def _language_ranges(header: str) -> list[str]:
    """RFC 9110 §12.5.4: ranges by descending quality, header order among equals; q=0 means "not this"."""
    weighted: list[tuple[float, int, str]] = []
    for position, item in enumerate(header.split(",")):
        tag, *parameters = (part.strip() for part in item.split(";"))
        if not tag:
            continue
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if 0.0 < quality <= 1.0:
            # "*" is any language: ours, by default.
            tag = DEFAULT_LOCALE if tag == "*" else tag.replace("_", "-").lower()
            weighted.append((-quality, position, tag))
    return [tag for _, _, tag in sorted(weighted)]


@functools.cache
def _translations(locale: str) -> gettext.GNUTranslations:
    # Read from the .po and compiled in memory (fuzzy entries left out, as msgfmt does): no build step,
    # no .mo to keep in step. Once per process and locale.
    with (LOCALES_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as po:
        catalog = read_po(po, locale=locale, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def jinja_environment(loader: jinja2.BaseLoader, **options: Any) -> jinja2.Environment:
    """A Jinja2 environment with `jinja2.ext.i18n` wired to the catalogs.

    Render its templates with a `locale` variable (one of `LOCALES`); then `{% trans %}`, `_()`,
    `gettext`, `ngettext`, `pgettext` translate (new-style: `{{ _("Hello %(name)s", name=x) }}`),
    and the filters `label` / `labels` name vocabulary values: `{{ topics|labels }}`. Whitespace in
    `{% trans %}` blocks is trimmed, as `make i18n` extracts them. Templates ship with the code, so
    they are not checked for changes on every render (`auto_reload=True` to develop them live).
    """
    options = {"auto_reload": False} | options
    environment = jinja2.Environment(loader=loader, extensions=["jinja2.ext.i18n"], **options)
    environment.policies["ext.i18n.trimmed"] = True
    environment.install_gettext_callables(  # type: ignore[attr-defined]  # added by jinja2.ext.i18n
        gettext=_template_gettext,
        ngettext=_template_ngettext,
        pgettext=_template_pgettext,
        npgettext=_template_npgettext,
        newstyle=True,
    )
    environment.filters["label"] = _template_label
    environment.filters["labels"] = _template_labels
    return environment


def _template_translator(context: jinja2.runtime.Context) -> Translator:
    locale = context.get("locale")
    if not isinstance(locale, str):
        raise jinja2.TemplateRuntimeError("render i18n templates with a locale variable, e.g. locale='ja'")
    return translator(locale)


# Jinja's new-style wrappers format the result with the template's variables; these only look up.
@jinja2.pass_context
def _template_gettext(context: jinja2.runtime.Context, message: str) -> str:
    return _template_translator(context).translations.gettext(message)


@jinja2.pass_context
def _template_ngettext(context: jinja2.runtime.Context, singular: str, plural: str, n: int) -> str:
    return _template_translator(context).translations.ngettext(singular, plural, n)


@jinja2.pass_context
def _template_pgettext(context: jinja2.runtime.Context, message_context: str, message: str) -> str:
    return _template_translator(context).translations.pgettext(message_context, message)


@jinja2.pass_context
def _template_npgettext(
    context: jinja2.runtime.Context, message_context: str, singular: str, plural: str, n: int
) -> str:
    return _template_translator(context).translations.npgettext(message_context, singular, plural, n)


@jinja2.pass_context
def _template_label(context: jinja2.runtime.Context, value: StrEnum) -> str:
    return _template_translator(context).label(value)


@jinja2.pass_context
def _template_labels(context: jinja2.runtime.Context, values: Iterable[StrEnum]) -> str:
    return _template_translator(context).labels(values)
