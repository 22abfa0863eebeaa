"""Model cards: YAML files that name a model, its architecture and where its weights come from.

Cards come from plugins (``register_model_cards``) and from user directories: every folder in
``ZOO_CARDS_PATH`` (``os.pathsep``-separated) and ``$XDG_CONFIG_HOME/zoo/cards`` (default
``~/.config/zoo/cards``). A user card shadows a plugin card of the same name; two plugin cards
with the same name or alias are an error naming both plugins.

Parsing a card is cheap (YAML only); schema validation runs when a card is used or validated.
The registry (:mod:`.registry`) parses plugin cards when their plugin registers them and builds
the :class:`Catalogue`; this module never looks a registry up itself, the caller passes it
(``zoo_registry.get_registry()`` for the process-wide one). Using a card goes through two functions:

- :func:`resolve` finds a card by name or alias, validates it against ``schemas/card.schema.json``
  and checks that what it needs is installed: the architecture it names, and every entry of
  ``requires`` (zoo plugins, ``zoo`` itself or Python packages, with PEP 440 specifiers; see
  :mod:`.card_requires`). A missing or too-old plugin is an error that names the plugin to install.
- :func:`materialize` turns the card's ``source`` into a local checkpoint folder (see
  :mod:`.card_sources`): a local path, a Hugging Face repo id, or a generator.

Nothing here imports MLX.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .card_requires import check_requires, version_satisfies  # noqa: F401 - part of this module's interface
from .card_sources import cache_dir, generated_folder, hf_snapshot, materialize  # noqa: F401 - likewise
from .errors import ConfigError, DuplicateNameError, UnknownNameError, UnsafeInputError, ZooError, did_you_mean
from .files import read_yaml


def user_card_dirs() -> List[Path]:
    """User card directories, highest precedence first."""
    dirs = [Path(p).expanduser() for p in os.environ.get("ZOO_CARDS_PATH", "").split(os.pathsep) if p.strip()]
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    dirs.append(config_home / "zoo" / "cards")
    return dirs


def catalogue_key() -> Tuple[Tuple[str, Optional[int]], ...]:
    """What a catalogue built now depends on: each user card folder and when it last changed.

    A registry keeps its catalogue while this stays the same, and rebuilds it when
    ``ZOO_CARDS_PATH`` / ``XDG_CONFIG_HOME`` name other folders or a card file is added to or
    removed from one of them.
    """
    key = []
    for folder in user_card_dirs():
        try:
            key.append((str(folder), folder.stat().st_mtime_ns if folder.is_dir() else None))
        except OSError:
            key.append((str(folder), None))
    return tuple(key)


@dataclass
class Card:
    """One parsed card file. ``data`` is the YAML mapping as written (not yet schema-validated)."""

    path: Path
    origin: str  # "plugin:<name>" or "user:<dir>"
    data: dict
    trusted_root: Optional[Path] = None
    shadows: List[str] = field(default_factory=list)
    catalogue: Optional["Catalogue"] = field(default=None, repr=False, compare=False)  # the one it was found in

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

    @property
    def source(self) -> dict:
        source = self.data.get("source")
        return source if isinstance(source, dict) else {}

    @property
    def source_kind(self) -> Optional[str]:
        """``"hf"``, ``"path"`` or ``"generate"`` (after validation exactly one applies)."""
        for key, kind in (("hf_repo", "hf"), ("path", "path"), ("generate", "generate")):
            if key in self.source:
                return kind
        return None

    def where(self, key: str = "") -> str:
        """``FILE::$.key`` for messages about this card."""
        return f"{self.path}::$" + (f".{key}" if key else "")

    def validate(self) -> "Card":
        """Check the card against ``schemas/card.schema.json``; raise :class:`SchemaError`."""
        from .schema import framework_schema_path, load_schema, validate

        validate(self.data, load_schema(str(framework_schema_path("card"))), str(self.path), "model card")
        return self

    def check(self, registry) -> "Card":
        """Check what the card needs is installed in ``registry``: its architecture and its ``requires``.

        Raises :class:`PluginError` naming the plugin to install (or upgrade), and
        :class:`UnknownNameError` when no installed plugin serves the architecture.
        """
        check_requires(self, registry)
        try:
            registry.architecture(self.architecture)
        except KeyError as e:
            needed = [n for n in (self.data.get("requires") or {}) if n not in ("zoo", "zoo-mlx")]
            hint = (
                f"this card requires the zoo plugin(s) {', '.join(map(repr, needed))}: install the package that provides them"
                if needed
                else f"install a zoo plugin that serves model_type {self.architecture!r}"
            )
            hint += "; `zoo plugins` lists installed plugins"
            raise UnknownNameError(f"{self.where('architecture')}: model card {self.name!r} needs architecture {self.architecture!r}, "
                                   f"which no installed plugin serves{did_you_mean(self.architecture, _arch_names(registry))}", hint=hint) from e
        if self.source_kind == "path":
            self.local_path()  # refuses a plugin card whose path escapes its folder
        return self

    def local_path(self) -> Path:
        """The folder a ``source.path`` card points at (relative to the card's own folder)."""
        raw = os.path.expanduser(self.source["path"])
        path = Path(raw) if os.path.isabs(raw) else self.path.parent / raw
        if self.trusted_root is not None:
            real, root = Path(os.path.realpath(path)), Path(os.path.realpath(self.trusted_root))
            if real != root and root not in real.parents:
                raise UnsafeInputError(
                    f"{self.where('source.path')}: plugin model card {self.name!r} points at {real}, outside its cards folder {root}",
                    hint="a plugin's card may only name folders inside the plugin's cards folder; put user checkpoints in a user card "
                    "(ZOO_CARDS_PATH or ~/.config/zoo/cards)",
                )
        return path

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
    def build(cls, plugin_cards) -> "Catalogue":
        """``plugin_cards``: the :class:`Card` objects the registry parsed when plugins registered them."""
        cat = cls()
        for card in plugin_cards:  # copied: ``shadows`` and ``catalogue`` belong to this catalogue, not to the registry
            cat._add(dataclasses.replace(card, shadows=[]), plugin=True)
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
        card.catalogue = self
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


# -- resolve: find + validate + check ---------------------------------------------------------
def resolve(name: str, registry) -> Card:
    """The card called ``name`` (or with that alias) in ``registry``'s catalogue, schema-validated and
    checked installable (``registry``: e.g. ``zoo_registry.get_registry()``)."""
    card = registry.cards().get(name)
    card.validate()
    return card.check(registry)


def lookup(name: str, registry) -> Optional[Card]:
    """The card called ``name`` in ``registry``'s catalogue if there is one (not validated), else ``None``."""
    catalogue = registry.cards()
    return catalogue.get(name) if name in catalogue else None


def _arch_names(registry):
    return set(registry.architectures) | set(registry.builtin_architectures())
