"""Model cards: YAML files that name a model, its architecture and where its weights come from.

Cards come from plugins (``register_model_cards``) and from user directories: every folder in
``ZOO_CARDS_PATH`` (``os.pathsep``-separated) and ``$XDG_CONFIG_HOME/zoo/cards`` (default
``~/.config/zoo/cards``). A user card shadows a plugin card of the same name; two plugin cards
with the same name or alias are an error naming both plugins.

Parsing a card is cheap (YAML only); schema validation runs when a card is used or validated.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from .errors import ConfigError, DuplicateNameError, UnknownNameError, ZooError, did_you_mean
from .files import read_yaml


def user_card_dirs() -> List[Path]:
    """User card directories, highest precedence first."""
    dirs = [Path(p).expanduser() for p in os.environ.get("ZOO_CARDS_PATH", "").split(os.pathsep) if p.strip()]
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    dirs.append(config_home / "zoo" / "cards")
    return dirs


@dataclass
class Card:
    """One parsed card file. ``data`` is the YAML mapping as written (not yet schema-validated)."""

    path: Path
    origin: str  # "plugin:<name>" or "user:<dir>"
    data: dict
    trusted_root: Optional[Path] = None
    shadows: List[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.data.get("name")

    @property
    def aliases(self) -> List[str]:
        aliases = self.data.get("aliases") or []
        return [a for a in aliases if isinstance(a, str)] if isinstance(aliases, list) else []

    @property
    def architecture(self) -> Optional[str]:
        return self.data.get("architecture")

    def validate(self) -> "Card":
        """Check the card against ``schemas/card.schema.json``; raise :class:`SchemaError`."""
        from .schema import framework_schema_path, load_schema, validate

        validate(self.data, load_schema(str(framework_schema_path("card"))), str(self.path), "model card")
        return self

    def summary(self) -> dict:
        return {
            "name": self.name,
            "aliases": self.aliases,
            "architecture": self.architecture,
            "description": self.data.get("description"),
            "origin": self.origin,
            "path": str(self.path),
            "shadows": self.shadows,
        }


def read_card(path, origin: str = "file", trusted_root: Optional[Path] = None) -> Card:
    """Parse one card file; the mapping must at least have a string ``name``."""
    data = read_yaml(path, "model card")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}::$: a model card must be a YAML mapping, got {type(data).__name__}")
    if not isinstance(data.get("name"), str):
        raise ConfigError(f"{path}::$.name: required key is missing (a card needs a string name)")
    return Card(Path(path), origin, data, trusted_root)


class Catalogue:
    """All cards by name and alias, with the problems found while reading them."""

    def __init__(self):
        self.cards: Dict[str, Card] = {}  # by name and alias
        self.problems: List[str] = []  # unreadable user cards; shown by `zoo list`

    @classmethod
    def build(cls, plugin_sources) -> "Catalogue":
        cat = cls()
        for src in plugin_sources:  # plugin cards were parsed at registration; errors failed the plugin
            cat._add(read_card(src.path, f"plugin:{src.origin}", src.trusted_root), plugin=True)
        for folder in reversed(user_card_dirs()):  # lowest precedence first, later ones shadow
            if not folder.is_dir():
                continue
            for path in sorted(folder.glob("*.y*ml")):
                try:
                    card = read_card(path, f"user:{folder}")
                except ZooError as e:
                    cat.problems.append(str(e))
                    continue
                cat._add(card, plugin=False)
        return cat

    def _add(self, card: Card, plugin: bool):
        for key in [card.name, *card.aliases]:
            existing = self.cards.get(key)
            if existing is not None and existing is not card:
                if plugin and existing.origin.startswith("plugin:"):
                    raise DuplicateNameError(
                        f"model card {key!r} is registered by both {existing.origin} ({existing.path}) "
                        f"and {card.origin} ({card.path})"
                    )
                card.shadows.append(f"{existing.origin}:{key}")
            self.cards[key] = card

    def unique(self) -> List[Card]:
        seen, out = set(), []
        for card in self.cards.values():
            if id(card) not in seen and self.cards.get(card.name) is card:
                seen.add(id(card))
                out.append(card)
        return sorted(out, key=lambda c: c.name)

    def get(self, name: str) -> Card:
        if name not in self.cards:
            raise UnknownNameError(
                f"no model card named {name!r}{did_you_mean(name, self.cards)}",
                hint="`zoo list` shows the cards; a folder path or a Hugging Face repo id works too",
            )
        return self.cards[name]

    def __contains__(self, name: str) -> bool:
        return name in self.cards
