"""Generates the committed JSON Schemas of the contract: `python -m shared.contract.schemas [--check]`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from shared.contract.envelope import Envelope
from shared.contract.registry import EVENT_TYPES

SCHEMAS_DIR = Path(__file__).parent / "schemas"
SAMPLES_DIR = Path(__file__).parent / "samples"


def _schema(model: type[BaseModel], schema_id: str) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": schema_id, **schema}


def generate() -> dict[str, str]:
    """File name → content of every schema, exactly as committed."""
    documents = {"envelope.json": _schema(Envelope, "hubnet:schemas/envelope.json")}
    for event_type, model in sorted(EVENT_TYPES.items()):
        documents[f"{event_type}.json"] = _schema(model, f"hubnet:schemas/{event_type}.json")
    return {
        name: json.dumps(document, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
        for name, document in documents.items()
    }


def stale() -> list[str]:
    """Names of schema files that differ from (or are missing against) the models."""
    expected = generate()
    present = {path.name for path in SCHEMAS_DIR.glob("*.json")}
    differing = [
        name
        for name, content in expected.items()
        if not (SCHEMAS_DIR / name).exists() or (SCHEMAS_DIR / name).read_text(encoding="utf-8") != content
    ]
    return sorted(differing + sorted(present - expected.keys()))


def main() -> None:
    if "--check" in sys.argv:
        names = stale()
        if names:
            sys.exit(f"stale contract schemas (run `make contracts`): {', '.join(names)}")
        return
    SCHEMAS_DIR.mkdir(exist_ok=True)
    for path in SCHEMAS_DIR.glob("*.json"):
        path.unlink()
    for name, content in generate().items():
        (SCHEMAS_DIR / name).write_text(content, encoding="utf-8")


if __name__ == "__main__":
    main()
