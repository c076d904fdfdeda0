"""The consultation record's own rules: 法人番号 check digit, katakana, references, attachments, consents."""

from __future__ import annotations

import io
import re
import uuid
import zipfile

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from services.intake import attachments, domain, record
from shared.contract.vocabulary import check_digit, corporate_number_is_valid
from tests.unit.test_http_contract import VALID


@pytest.mark.parametrize(
    "number",
    [
        "7000012050002",  # 国税庁 (National Tax Agency), its own example
        "4000012090001",  # 厚生労働省 (MHLW)
    ],
)
def test_published_corporate_numbers_are_valid(number: str) -> None:
    assert corporate_number_is_valid(number)


@given(st.text(alphabet="0123456789", min_size=12, max_size=12), st.integers(1, 9))
def test_exactly_one_check_digit_fits_each_base(base: str, digit: int) -> None:
    assert corporate_number_is_valid(f"{digit}{base}") is (digit == check_digit(base))


@pytest.mark.parametrize("number", ["", "700001205000", "70000120500021", "７000012050002", "700001205000x"])
def test_corporate_number_of_the_wrong_shape_is_not_valid(number: str) -> None:
    assert not corporate_number_is_valid(number)


def test_request_refuses_a_corporate_number_whose_check_digit_does_not_match() -> None:
    with pytest.raises(ValidationError) as raised:
        record.ConsultationRequest.model_validate({**VALID, "corporate_number": "8000012050002"})
    assert [(error["loc"], error["type"]) for error in raised.value.errors()] == [
        (("corporate_number",), "corporate_number")
    ]


@pytest.mark.parametrize(
    ("reading", "valid"), [("ヤマダ", True), ("ヤマダ　ハナコ", True), ("やまだ", False), ("Yamada", False)]
)
def test_reading_is_full_width_katakana(reading: str, valid: bool) -> None:
    request = {**VALID, "family_name_kana": reading}
    if valid:
        assert record.ConsultationRequest.model_validate(request).family_name_kana == reading
    else:
        with pytest.raises(ValidationError, match="katakana"):
            record.ConsultationRequest.model_validate(request)


def test_contact_is_composed_from_family_and_given_name_when_no_contact_name_is_given() -> None:
    request = {key: value for key, value in VALID.items() if key != "contact_name"}
    composed = record.ConsultationRequest.model_validate({**request, "family_name": "山田", "given_name": "花子"})
    assert composed.full_name == "山田 花子"
    with pytest.raises(ValidationError) as raised:
        record.ConsultationRequest.model_validate({**request, "family_name": "山田"})
    assert raised.value.errors()[0]["ctx"] == {"field": "given_name"}


def test_older_all_or_nothing_consent_means_every_other_hub() -> None:
    hubs = {"mediso": None, "cariso": None, "pmda": None}
    legacy = record.ConsultationRequest.model_validate({**VALID, "consent_to_share": True})
    assert record.consents(legacy, hubs, "mediso").share_with == ("cariso", "pmda")
    chosen = record.ConsultationRequest.model_validate({**VALID, "share_with": ["pmda", "pmda"]})
    assert record.consents(chosen, hubs, "mediso").share_with == ("pmda",)
    assert record.unknown_hubs(record.ConsultationRequest.model_validate({**VALID, "share_with": ["x"]}), hubs) == [0]


def test_reference_names_the_hub_and_reads_aloud_without_ambiguous_letters() -> None:
    references = {domain.reference("mediso", uuid.uuid4()) for _ in range(2000)}
    assert len(references) == 2000
    for reference in references:
        assert re.fullmatch(r"MEDISO-[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}", reference)


def _ooxml(*extra: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as package:
        package.writestr("[Content_Types].xml", "<Types/>")
        for name in extra:
            package.writestr(name, "x")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "media_type"),
    [
        ("plan.pdf", b"%PDF-1.7\n...", "application/pdf"),
        ("計画書.docx", _ooxml("word/document.xml"), attachments._OOXML[".docx"]),
        ("budget.XLS", bytes.fromhex("d0cf11e0a1b11ae1") + b"\0" * 100, "application/vnd.ms-excel"),
    ],
)
def test_pdf_and_office_documents_are_accepted_by_their_content(name: str, data: bytes, media_type: str) -> None:
    accepted = attachments.inspect(name, data)
    assert (accepted.filename, accepted.media_type, accepted.size) == (name, media_type, len(data))


@pytest.mark.parametrize(
    ("name", "data", "code"),
    [
        ("plan.pdf", b"MZ\x90\x00 an executable", "attachment_type"),
        ("macro.docx", _ooxml("word/vbaProject.bin"), "attachment_type"),
        ("notes.txt", b"plain text", "attachment_type"),
        ("empty.pdf", b"", "attachment_empty"),
        ("big.pdf", b"%PDF-" + b"0" * attachments.MAX_BYTES, "attachment_too_large"),
    ],
)
def test_other_files_are_refused_with_a_reason(name: str, data: bytes, code: str) -> None:
    with pytest.raises(attachments.AttachmentRefused) as refused:
        attachments.inspect(name, data)
    assert refused.value.code == code


def test_a_files_name_loses_any_directory_the_client_sent() -> None:
    assert attachments.safe_filename("C:\\Users\\me\\..\\計画.pdf") == "計画.pdf"
    assert attachments.safe_filename("../../etc/passwd\x00.pdf") == "passwd.pdf"


def test_the_same_product_is_the_same_name_however_typed_or_the_same_kind_when_unnamed() -> None:
    assert domain.same_product(domain.Product("ＡＩ 診断", "samd"), domain.Product("ai診断", "drug"))
    assert not domain.same_product(domain.Product("AI診断", "samd"), domain.Product("見守り", "samd"))
    assert domain.same_product(domain.Product(None, "samd"), domain.Product("AI診断", "samd"))
    assert not domain.same_product(domain.Product(None, "samd"), domain.Product(None, "drug"))


def test_every_status_has_plain_words_for_the_applicant() -> None:
    from services.intake.applicant import STATUS_TEXT

    assert set(STATUS_TEXT) == set(domain.Status)
