"""The hubs of the network: who they are and how to name them. Adding a hub is configuration."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Hub:
    id: str
    name_ja: str
    name_en: str
    operator_ja: str
    operator_en: str


DEFAULT_HUBS: tuple[Hub, ...] = (
    Hub(
        "mediso",
        "医療系ベンチャー・トータルサポート事業 (MEDISO)",
        "MEDISO — MEDical Innovation Support Office",
        "厚生労働省",
        "MHLW",
    ),
    Hub(
        "cariso",
        "介護テック・トータルサポート事業 (CARISO)",
        "CARISO — CARe Innovation Support Office",
        "厚生労働省",
        "MHLW",
    ),
    Hub(
        "innohub", "ヘルスケアイノベーションハブ (InnoHub)", "Healthcare Innovation Hub (InnoHub)", "経済産業省", "METI"
    ),
    Hub(
        "medic",
        "医療機器開発支援ネットワーク (MEDIC)",
        "Medical device development support network (MEDIC)",
        "AMED事務局",
        "AMED secretariat",
    ),
    Hub(
        "pmda",
        "PMDA相談業務 (医療機器プログラム総合相談)",
        "PMDA consultations (incl. SaMD one-stop window)",
        "PMDA / 厚生労働省",
        "PMDA / MHLW",
    ),
    Hub(
        "fukushima",
        "ふくしま医療機器産業推進機構",
        "Fukushima Medical Device Industry Promotion Organization",
        "福島県",
        "Fukushima Prefecture",
    ),
)


class HubSettings(Protocol):
    @property
    def hubs_file(self) -> Path | None: ...


def load_hubs(settings: HubSettings | None = None) -> dict[str, Hub]:
    """The configured hubs by id: the defaults, or the JSON list in `HUBNET_HUBS_FILE`."""
    path = settings.hubs_file if settings is not None else None
    if path is None:
        hubs = DEFAULT_HUBS
    else:
        hubs = tuple(Hub(**entry) for entry in json.loads(path.read_text(encoding="utf-8")))
    return {hub.id: hub for hub in hubs}
