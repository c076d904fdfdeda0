"""The catalogs against the code that uses them, language negotiation, labels and translated templates."""

from __future__ import annotations

import inspect
from enum import StrEnum
from pathlib import Path

import jinja2
import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from services.notify import domain as notify
from services.notify.templates import Templates
from shared import i18n
from shared.contract import vocabulary
from shared.contract.vocabulary import Language, ProductKind, SupportField

ROOT = Path(__file__).resolve().parents[2]


def _used_msgids() -> set[str]:
    """What `make i18n` extracts: babel.cfg's mapping over shared/ and services/."""
    with (ROOT / "babel.cfg").open(encoding="utf-8") as config:
        method_map, options_map = parse_mapping_cfg(config)  # type: ignore[no-untyped-call]  # Babel leaves it untyped
    msgids = set()
    for directory in ("shared", "services"):
        for _, _, message, _, _ in extract_from_dir(ROOT / directory, method_map, options_map):
            msgids.add(message if isinstance(message, str) else message[0])
    return msgids


def _catalog(locale: str) -> Catalog:
    with (i18n.LOCALES_DIR / locale / "LC_MESSAGES" / f"{i18n.DOMAIN}.po").open("rb") as po:
        return read_po(po, locale=locale)


def test_extraction_finds_messages_of_every_kind_when_scanning_the_code() -> None:
    used = _used_msgids()
    assert {
        "Consultation not found",  # http.not_found
        "This consultation is already withdrawn",  # http.Problem
        "Some fields are invalid: %(fields)s",  # N_
        "Reference: %(reference)s",  # {% trans %} in a template
        "Regulation",  # a vocabulary label
    } <= used


@pytest.mark.parametrize("locale", i18n.LOCALES)
def test_catalog_fails_when_a_msgid_used_in_the_code_is_missing_or_untranslated(locale: str) -> None:
    catalog = _catalog(locale)
    missing = sorted(msgid for msgid in _used_msgids() if msgid not in catalog)
    assert missing == [], f"not in the {locale} catalog: run `make i18n`, then translate: {missing}"
    fuzzy = sorted(message.id for message in catalog if message.id and message.fuzzy and message.string)
    assert fuzzy == [], f"fuzzy entries in the {locale} catalog need a translator's review: {fuzzy}"
    if locale == "ja":
        # A plural entry's string is a tuple of forms: each must be filled.
        untranslated = sorted(
            str(message.id)
            for message in catalog
            if message.id and (not message.string or (isinstance(message.string, tuple) and not all(message.string)))
        )
        assert untranslated == [], f"untranslated in ja: {untranslated}"


@pytest.mark.parametrize("locale", i18n.LOCALES)
def test_catalog_fails_when_a_translation_drops_or_invents_a_placeholder(locale: str) -> None:
    problems = [(message.id, [str(error) for error in errors]) for message, errors in _catalog(locale).check()]
    assert problems == []


def test_every_vocabulary_value_has_a_label_in_both_languages() -> None:
    enums = [
        member
        for _, member in inspect.getmembers(vocabulary, inspect.isclass)
        if issubclass(member, StrEnum) and member.__module__ == vocabulary.__name__
    ]
    assert set(enums) == set(i18n.LABELS)
    for enum in enums:
        assert set(i18n.LABELS[enum]) == set(enum), enum
    assert i18n.label(ProductKind.SAMD, "ja") == "プログラム医療機器"
    assert i18n.label(ProductKind.SAMD, "en") == "Software as a medical device"


@pytest.mark.parametrize(
    ("accept_language", "expected"),
    [
        ("en;q=0.1, ja;q=0.9", "ja"),
        ("ja;q=0.2, en;q=0.8", "en"),
        ("en-GB,en;q=0.9", "en"),
        ("EN-us", "en"),
        ("fr-CA, fr;q=0.9, en;q=0.5, ja;q=0.4", "en"),
        ("ja;q=0, en;q=0.1", "en"),
        ("en;q=0", "ja"),
        ("en;q=banana, ja;q=0.5", "ja"),
        ("*;q=1, en;q=0.9", "ja"),
        ("fr", "ja"),
        ("", "ja"),
        (None, "ja"),
    ],
)
def test_negotiation_honours_quality_values_when_several_languages_are_acceptable(
    accept_language: str | None, expected: str
) -> None:
    assert i18n.negotiate(accept_language) == expected


def test_translator_formats_placeholders_in_its_locale() -> None:
    assert i18n.translator("ja").gettext("Hub '%(hub)s' not found", hub="x") == "窓口 'x' が見つかりません"
    assert i18n.in_every_locale("Reference: %(reference)s", reference="AB12") == {
        "ja": "受付番号: AB12",
        "en": "Reference: AB12",
    }
    with pytest.raises(KeyError):
        i18n.translator("fr")


def test_acknowledgement_labels_topics_itself_when_given_vocabulary_values() -> None:
    context = {
        "hub_name": "MEDISO",
        "reference": "AB12CD34",
        "topics": (SupportField.REGULATION, SupportField.IP_STRATEGY),
        "page_url": None,
    }
    english = Templates().render(notify.ACKNOWLEDGEMENT, Language.EN, **context)
    japanese = Templates().render(notify.ACKNOWLEDGEMENT, Language.JA, **context)
    assert "Topics: Regulation and IP strategy\n" in english.body
    assert "相談分野: 法規制対応、知財戦略\n" in japanese.body
    assert japanese.body.startswith("MEDISOへのご相談をお受けしました")


def test_acknowledgement_carries_nothing_the_submitter_typed() -> None:
    """Anti-phishing: whatever a form's text fields say, the hub's email does not repeat it."""
    typed = {"contact_name": "Visit evil.example now", "title": "Your account is locked", "organization": "Bank"}
    context = {
        "hub_name": "MEDISO",
        "reference": "AB12CD34",
        "topics": (SupportField.REGULATION,),
        "page_url": "https://hubnet.example.jp/portal/my/q3Zr8vB1x0YwK4nTg7cH2sLdE9mPaUfJ6oRiNbVyW5k",
        **typed,
    }
    for language in Language:
        rendered = Templates().render(notify.ACKNOWLEDGEMENT, language, **context)
        for text in typed.values():
            assert text not in rendered.subject + rendered.body


def test_acknowledgement_gives_the_reference_and_the_link_to_the_applicants_page() -> None:
    url = "https://hubnet.example.jp/portal/my/q3Zr8vB1x0YwK4nTg7cH2sLdE9mPaUfJ6oRiNbVyW5k"
    context = {"hub_name": "CARISO", "reference": "CARISO-V8DFP-07SK8", "topics": (SupportField.REGULATION,)}
    for language in Language:
        rendered = Templates().render(notify.ACKNOWLEDGEMENT, language, page_url=url, **context)
        assert "CARISO-V8DFP-07SK8" in rendered.subject
        assert f"\n{url}\n" in rendered.body
        without = Templates().render(notify.ACKNOWLEDGEMENT, language, page_url=None, **context)
        assert "/portal/my/" not in without.body


def test_jinja_environment_translates_trans_blocks_underscore_and_filters_by_locale() -> None:
    environment = i18n.jinja_environment(
        jinja2.DictLoader(
            {
                "page.html": (
                    "{% trans %}Topics: {{ topics }}{% endtrans %}"
                    "|{{ _('Reference: %(reference)s', reference=ref) }}"
                    "|{{ kind|label }}"
                )
            }
        ),
        autoescape=True,
    )
    page = environment.get_template("page.html")
    rendered = page.render(locale="ja", topics="<b>", ref="R1", kind=ProductKind.DRUG)
    assert rendered == "相談分野: &lt;b&gt;|受付番号: R1|医薬品"
    assert page.render(locale="en", topics="A", ref="R1", kind=ProductKind.DRUG) == "Topics: A|Reference: R1|Drug"
    with pytest.raises(jinja2.TemplateRuntimeError):
        page.render(topics="A", ref="R1", kind=ProductKind.DRUG)
