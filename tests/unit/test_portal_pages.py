"""The portal's templates render in both languages with every word from the catalogs (pages in a browser:
tests/e2e/test_portal.py)."""

from __future__ import annotations

import re

import pytest

from services.intake.pages import Pages
from shared.contract.vocabulary import SupportField
from shared.hubs import DEFAULT_HUBS


@pytest.mark.parametrize("locale", ["ja", "en"])
def test_the_form_offers_each_group_of_choices_as_radios_or_checkboxes(locale: str) -> None:
    hub, *others = DEFAULT_HUBS
    response = Pages("http://hubnet.example").render(
        "portal/form.html",
        locale,
        hub=hub,
        values={"language": locale, "topics": ["regulation"], "applicant_kind": "startup"},
        errors={"topics": ["x"]},
        summary=[("topics", "x")],
        notice=None,
        staged=[],
        staged_token="s",
        form_token="t",
        other_hubs=others,
        co_researcher_rows=3,
        honeypot="website",
        max_body=20_000,
    )
    page = bytes(response.body).decode()
    assert f'<html lang="{locale}">' in page
    assert len(re.findall(r'type="radio" id="f-applicant_kind-\d+"', page)) == 7
    assert len(re.findall(r'type="checkbox" id="f-topics-\d+"', page)) == len(SupportField)
    assert re.search(r'id="f-topics-1" name="topics" value="regulation" checked>', page)
    assert re.search(r'value="startup" checked required>', page)
    assert 'aria-describedby="f-topics-help f-topics-error"' in page
