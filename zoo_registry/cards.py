"""Model cards: YAML files that name a model, its architecture and where its weights come from.

Cards come from plugins (``register_model_cards``) and from user directories: every folder in
``ZOO_CARDS_PATH`` (``os.pathsep``-separated) and ``$XDG_CONFIG_HOME/zoo/cards`` (default
``~/.config/zoo/cards``). A user card shadows a plugin card of the same name; two plugin cards
with the same name or alias are an error naming both plugins.

Parsing a card is cheap (YAML only); schema validation runs when a card is used or validated.
Using a card goes through two functions:

- :func:`resolve` finds a card by name or alias, validates it against ``schemas/card.schema.json``
  and checks that what it needs is installed: the architecture it names, and every entry of
  ``requires`` (zoo plugins, ``zoo`` itself or Python packages, with PEP 440 specifiers). A
  missing or too-old plugin is an error that names the plugin to install.
- :func:`materialize` turns the card's ``source`` into a local checkpoint folder: a local path
  (a plugin's card may not point outside its own cards folder), a Hugging Face repo id looked up
  in the Hugging Face cache (nothing is downloaded when ``HF_HUB_OFFLINE=1``), or a generator
  that builds the checkpoint once into the zoo cache (``ZOO_CACHE_DIR``, else
  ``$XDG_CACHE_HOME/zoo``, else ``~/.cache/zoo``).

Nothing here imports MLX.
"""

from __future__ import annotations

import dataclasses

import hashlib
import inspect
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

from .errors import (
    CheckpointNotFoundError,
    ConfigError,
    DuplicateNameError,
    PluginError,
    UnknownNameError,
    UnsafeInputError,
    ZooError,
    did_you_mean,
)
from .files import read_yaml


def user_card_dirs() -> List[Path]:
    """User card directories, highest precedence first."""
    dirs = [Path(p).expanduser() for p in os.environ.get("ZOO_CARDS_PATH", "").split(os.pathsep) if p.strip()]
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    dirs.append(config_home / "zoo" / "cards")
    return dirs


def cache_dir() -> Path:
    """zoo's cache folder: ``ZOO_CACHE_DIR``, else ``$XDG_CACHE_HOME/zoo``, else ``~/.cache/zoo``."""
    if os.environ.get("ZOO_CACHE_DIR"):
        return Path(os.environ["ZOO_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "zoo"


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

    def check(self, registry=None) -> "Card":
        """Check what the card needs is installed: its architecture and its ``requires``.

        Raises :class:`PluginError` naming the plugin to install (or upgrade), and
        :class:`UnknownNameError` when no installed plugin serves the architecture.
        """
        from .registry import get_registry

        registry = registry or get_registry()
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
        for card in plugin_cards:  # copied: ``shadows`` belongs to this catalogue, not to the registry
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
def resolve(name: str, registry=None) -> Card:
    """The card called ``name`` (or with that alias), schema-validated and checked installable."""
    from .registry import get_registry

    registry = registry or get_registry()
    card = registry.cards().get(name)
    card.validate()
    return card.check(registry)


def lookup(name: str, registry=None) -> Optional[Card]:
    """The card called ``name`` if there is one (not validated), else ``None``."""
    from .registry import get_registry

    catalogue = (registry or get_registry()).cards()
    return catalogue.get(name) if name in catalogue else None


def _arch_names(registry):
    return set(registry.architectures) | set(registry.builtin_architectures())


# -- requires -------------------------------------------------------------------------------
_ZOO_NAMES = ("zoo", "zoo-mlx")


def check_requires(card: Card, registry) -> None:
    """Check every ``requires`` entry: zoo plugins first, then ``zoo``, then Python packages."""
    requires = card.data.get("requires") or {}
    plugins = {p.name: p for p in registry.plugins}
    for name, spec in requires.items():
        where = card.where(f"requires.{name}")
        spec = (spec or "").strip()
        wanted = f" {spec}" if spec else ""
        if name in plugins:
            info = plugins[name]
            if info.status == "failed":
                raise PluginError(f"{where}: model card {card.name!r} needs zoo plugin {name!r}, which failed to load: {info.error}",
                                  hint="`zoo plugins` shows the error; reinstall or fix the plugin")
            if info.status == "skipped":
                raise PluginError(f"{where}: model card {card.name!r} needs zoo plugin {name!r}, which is disabled ({info.error})",
                                  hint="remove it from ZOO_DISABLED_PLUGINS, or add it to ZOO_LOAD_PLUGINS")
            version, what, dist = info.version, f"zoo plugin {name!r}", info.distribution or name
        elif name in _ZOO_NAMES:
            from . import __version__

            version, what, dist = _dist_version("zoo-mlx") or __version__, "zoo", "zoo-mlx"
        else:
            version, what, dist = _dist_version(name), f"package {name!r}", name
            if version is None:
                raise PluginError(
                    f"{where}: model card {card.name!r} needs zoo plugin {name!r}{wanted}, which is not installed",
                    hint=f"install the Python package that provides the zoo plugin {name!r} (an entry point {name!r} in the "
                    "'zoo' group); `zoo plugins` lists the installed ones",
                )
        if spec and not version_satisfies(version, spec, where):
            raise PluginError(
                f"{where}: model card {card.name!r} needs {what}{wanted}, but version {version} is installed",
                hint=f"upgrade it: pip install -U '{dist}{spec.replace(' ', '')}'",
            )


def _dist_version(name: str) -> Optional[str]:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def version_satisfies(version: Optional[str], spec: str, where: str = "requires") -> bool:
    """Whether ``version`` meets the PEP 440 specifier ``spec`` (``packaging`` if importable)."""
    try:
        from packaging.specifiers import InvalidSpecifier, SpecifierSet
        from packaging.version import InvalidVersion, Version
    except ImportError:  # pragma: no cover - packaging comes with transformers, mlx-lm's dependency
        return _simple_satisfies(version, spec, where)
    try:
        specifier = SpecifierSet(spec)
    except InvalidSpecifier:
        raise ConfigError(f"{where}: {spec!r} is not a PEP 440 version specifier", hint="write e.g. '>=0.1' or '>=0.1,<1'") from None
    if version is None:
        return False
    try:
        return Version(version) in specifier or specifier.contains(version, prereleases=True)
    except InvalidVersion:
        return False


_SIMPLE = re.compile(r"^\s*(~=|==|!=|<=|>=|<|>)\s*([0-9]+(?:\.[0-9]+)*)(\.\*)?\s*$")


def _release(text: str):
    parts = []
    for piece in text.split("."):
        digits = re.match(r"\d+", piece)
        parts.append(int(digits.group()) if digits else 0)
        if not digits or digits.group() != piece:
            break
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def _simple_satisfies(version: Optional[str], spec: str, where: str) -> bool:
    """A PEP 440 subset (release numbers; ``==X.*``; ``~=``) for installs without ``packaging``."""
    clauses = [c for c in spec.split(",") if c.strip()]
    parsed = []
    for clause in clauses:
        m = _SIMPLE.match(clause)
        if not m or (m.group(3) and m.group(1) not in ("==", "!=")):
            raise ConfigError(f"{where}: {spec!r} is not a PEP 440 version specifier", hint="write e.g. '>=0.1' or '>=0.1,<1'")
        parsed.append(m.groups())
    if version is None:
        return False
    have = _release(version)
    for op, text, star in parsed:
        want = _release(text)
        if star:
            prefix = tuple(int(p) for p in text.split("."))
            ok = (have + (0,) * len(prefix))[: len(prefix)] == prefix
            ok = ok if op == "==" else not ok
        elif op == "~=":
            upper = tuple(int(p) for p in text.split("."))[:-1]
            ok = have >= want and (have + (0,) * len(upper))[: len(upper)] == upper
        else:
            ok = {"==": have == want, "!=": have != want, "<=": have <= want, ">=": have >= want, "<": have < want, ">": have > want}[op]
        if not ok:
            return False
    return True


# -- materialize: card source -> local folder ---------------------------------------------------
def materialize(card: Card, progress: Optional[Callable[[int, int, str], None]] = None) -> Path:
    """A local checkpoint folder for ``card`` (validated first); builds or finds the weights.

    - ``source.path``: the folder itself (it must exist and, for a plugin card, stay inside the
      plugin's cards folder).
    - ``source.hf_repo``: the snapshot in the Hugging Face cache (optionally ``revision`` and
      ``subfolder``); offline-respecting, see :func:`hf_snapshot`.
    - ``source.generate``: ``module:function`` run once as ``function(folder, seed)`` into the zoo
      cache; later calls reuse the folder. ``progress(done, total, what)`` is passed on when the
      generator accepts it; by default a progress bar is drawn on stderr.
    """
    card.validate()
    kind = card.source_kind
    if kind == "path":
        path = card.local_path()
        if not path.is_dir():
            if os.path.islink(path) or path.exists():  # a file, a looping or dangling link: say which
                from .files import describe_missing

                problem = f"{path}: checkpoint folder is a file" if path.is_file() else describe_missing(path, "checkpoint folder")
                raise CheckpointNotFoundError(f"{card.where('source.path')}: {problem}", hint="fix source.path in the card")
            raise CheckpointNotFoundError(f"{card.where('source.path')}: checkpoint folder {path} does not exist",
                                          hint="fix source.path in the card, or copy the checkpoint there")
        return path
    if kind == "hf":
        src = card.source
        return hf_snapshot(src["hf_repo"], revision=src.get("revision"), subfolder=src.get("subfolder"), where=card.where("source.hf_repo"))
    return _generated(card, progress)


def generated_folder(card: Card) -> Path:
    """Where the generator of ``card`` writes its checkpoint (a key of target, seed and version)."""
    target, seed = card.source["generate"], int(card.source.get("seed", 0))
    version = getattr(_generator_module(target), "GENERATOR_VERSION", 0)
    digest = hashlib.sha256(f"{target}|{seed}|{version}".encode()).hexdigest()[:12]
    return cache_dir() / "generated" / card.name / f"seed{seed}-{digest}"


def _generator_module(target: str):
    import importlib

    module = target.split(":")[0]
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise PluginError(f"cannot import generator module {module!r} ({target!r}): {e}",
                          hint="the plugin that ships this card may be broken; see `zoo plugins`") from e


def _generated(card: Card, progress=None) -> Path:
    from .resources import import_target

    folder = generated_folder(card)
    if (folder / "config.json").is_file():
        return folder
    func = import_target(card.source["generate"])
    seed = int(card.source.get("seed", 0))
    kwargs = {}
    try:
        accepts_progress = "progress" in inspect.signature(func).parameters
    except (TypeError, ValueError):
        accepts_progress = False
    bar = None
    if accepts_progress:
        if progress is None:
            from .progress import Progress

            bar = Progress(f"zoo: creating {card.name} in {folder}")
            progress = bar.callback
        kwargs["progress"] = progress
    ok = False
    try:
        func(folder, seed, **kwargs)
        ok = True
    except FileExistsError:
        ok = (folder / "config.json").is_file()  # another process built it first
        if not ok:
            raise
    except ZooError:
        raise
    except Exception as e:  # noqa: BLE001 - plugin code may raise anything
        raise PluginError(f"{card.where('source.generate')}: generator {card.source['generate']!r} failed: {type(e).__name__}: {e}") from e
    finally:
        if bar is not None:
            bar.close(ok=ok)
    if not (folder / "config.json").is_file():
        raise PluginError(f"{card.where('source.generate')}: generator {card.source['generate']!r} did not write {folder / 'config.json'}")
    return folder


# -- Hugging Face cache -------------------------------------------------------------------------
def hf_snapshot(repo_id: str, revision: Optional[str] = None, subfolder: Optional[str] = None, where: Optional[str] = None,
                *, allow_pickle_weights: Optional[bool] = None, refresh: Optional[bool] = None, dry_run: Optional[bool] = None):
    """The local snapshot folder of a Hugging Face repo (its ``subfolder`` if given).

    Resolution is :func:`zoo_registry.hub.resolve`: the Hugging Face cache first (``HF_HUB_CACHE``,
    ``HF_HOME/hub``), else only the files of ``subfolder`` that loading needs are downloaded (never
    when ``HF_HUB_OFFLINE`` is set). With ``dry_run`` a :class:`~zoo_registry.hub.DownloadPlan` is
    returned when something would be downloaded. Errors are prefixed with ``where`` (the card and
    key that named the repo), and a refused folder's hint names the cards serving other folders of
    the same repo.
    """
    from . import hub

    try:
        path = hub.resolve(repo_id, revision=revision, subfolder=subfolder, allow_pickle_weights=allow_pickle_weights,
                           refresh=refresh, dry_run=dry_run)
    except (CheckpointNotFoundError, UnsafeInputError) as e:
        hint = " ".join(filter(None, [e.hint, _other_cards(repo_id, subfolder)])) or None
        raise type(e)(f"{where}: {e}" if where else str(e), hint=hint) from None
    if not isinstance(path, Path):
        return path  # a dry run's DownloadPlan
    at = f"{repo_id}@{revision}" if revision else repo_id
    if not (path / "config.json").is_file():
        raise CheckpointNotFoundError(
            f"{where or repo_id}: the cached snapshot of {at} has no config.json ({path})",
            hint="the download may be incomplete; download it again" + ("" if subfolder else ", or set source.subfolder in the card"),
        )
    return path


def _other_cards(repo_id: str, subfolder: Optional[str]) -> str:
    """``'Cards for other folders of REPO: NAME (FOLDER/), ...'``, or an empty string."""
    try:
        from .registry import get_registry

        found = [c for c in get_registry().cards().unique()
                 if c.source.get("hf_repo") == repo_id and (c.source.get("subfolder") or "").strip("/") != (subfolder or "").strip("/")]
    except Exception:  # noqa: BLE001 - a hint must never hide the error it decorates
        return ""
    names = [f"{c.name} ({c.source.get('subfolder') or 'top level'})" for c in found]
    return f"Cards for other folders of {repo_id}: {', '.join(names)}." if names else ""
