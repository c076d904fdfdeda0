"""Email templates (Jinja2), one file per template and language: first line subject, then the body."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from shared.contract.vocabulary import Language

TEMPLATES_DIR = Path(__file__).parent / "templates"


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    body: str


class Templates:
    def __init__(self, directory: Path = TEMPLATES_DIR) -> None:
        self._env = Environment(
            loader=FileSystemLoader(directory), undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False
        )

    def render(self, name: str, language: Language, **context: Any) -> Rendered:
        text = self._env.get_template(f"{name}.{language.value}.txt").render(**context)
        subject, _, body = text.partition("\n")
        return Rendered(subject=subject.strip(), body=body)
