"""Email templates (Jinja2 with the catalogs' gettext), one per message: first line subject, then the body."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined

from shared import i18n
from shared.contract.vocabulary import Language

TEMPLATES_DIR = Path(__file__).parent / "templates"


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    body: str


class Templates:
    def __init__(self, directory: Path = TEMPLATES_DIR) -> None:
        self._env = i18n.jinja_environment(
            FileSystemLoader(directory), undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False
        )

    def render(self, name: str, language: Language, **context: Any) -> Rendered:
        """`name` without extension; vocabulary values in `context` are labelled by the template itself."""
        text = self._env.get_template(f"{name}.txt").render(context, locale=language.value)
        subject, _, body = text.partition("\n")
        return Rendered(subject=subject.strip(), body=body)
