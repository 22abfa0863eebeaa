"""What the plugins registered: architectures, components, sanitize ops, model cards, output parsers
and tokenizers.

The registry is built once per process from the ``zoo`` entry points (see :mod:`.plugins`) plus
mlx-lm's own architectures as a built-in provider of lower precedence. Everything is kept as
strings until used, so building it imports neither MLX nor any model code.

Registrations are transactional per plugin: a plugin whose hook raises, or who registers an
invalid or duplicate name, is marked failed and none of its registrations are kept.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from . import builtin_components, plugins as _plugins
from ._version import __version__
from .builtin_components import PROVIDER as CORE, RESERVED_PREFIX
from .cards import Catalogue, catalogue_key, read_card
from .errors import DuplicateNameError, PluginError, UnknownNameError, ZooError, ZooWarning, did_you_mean
from .registration import (RESOURCE, callback, check_description, check_name, check_names, check_resource,
                           check_schema_descriptions, check_target)
from .registry_mlx_lm import scan_mlx_lm
from .registry_text import OutputParser, TextLookups, TextStaging, check_text_kinds, merge_text_kinds
from .resources import resource_path

__all__ = ["Architecture", "BUILTIN_PROVIDER", "CardSource", "Named", "OutputParser", "Registry", "get_registry", "reset_registry"]

BUILTIN_PROVIDER = "mlx-lm"


@dataclass(frozen=True)
class Architecture:
    """One ``model_type`` and how to build and load it."""

    name: str
    provider: str
    model: Optional[str] = None  # "module:attr" -> f(config) -> nn.Module; None for mlx-lm built-ins
    config_schema: Optional[str] = None  # "package:path.json"
    rules: Optional[str] = None  # "package:path.yaml"
    normalize: Optional[str] = None  # "module:attr" -> f(config) -> config
    aliases: Tuple[str, ...] = ()
    description: str = ""
    provider_version: Optional[str] = None

    @property
    def builtin(self) -> bool:
        return self.provider == BUILTIN_PROVIDER

    def as_dict(self):
        return {
            "name": self.name,
            "provider": self.provider,
            "provider_version": self.provider_version,
            "aliases": list(self.aliases),
            "model": self.model,
            "config_schema": self.config_schema,
            "rules": self.rules,
            "normalize": self.normalize,
            "description": self.description,
        }


@dataclass(frozen=True)
class Named:
    """A component or sanitize op: a name, a lazy target and who registered it."""

    kind: str
    name: str
    target: str
    provider: str
    description: str = ""

    def load(self):
        from .resources import import_target

        return import_target(self.target)

    def as_dict(self):
        return {"name": self.name, "target": self.target, "provider": self.provider, "description": self.description}


@dataclass(frozen=True)
class CardSource:
    """A model-card file and where it came from (a plugin name, or a user cards directory)."""

    path: Path
    origin: str
    trusted_root: Optional[Path] = None  # plugin cards may not point outside their folder


class _Staging(TextStaging):
    """Collects one plugin's registrations; merged into the registry only if all hooks succeed."""

    def __init__(self, plugin: str, version: Optional[str], core: bool = False):
        self.plugin, self.version, self.core = plugin, version, core  # core: zoo's own registrations
        self.architectures: List[Architecture] = []
        self.components: List[Named] = []
        self.ops: List[Named] = []
        self.cards: List[CardSource] = []
        self.parsers: List[OutputParser] = []
        self.tokenizers: List[Named] = []

    def _where(self, hook):
        return f"plugin {self.plugin!r} ({hook})"

    def callbacks(self):
        """``(hook, register method)`` for every hook, in the order the registry calls them."""
        return (("register_architectures", self.architecture), ("register_components", self.component),
                ("register_sanitize_ops", self.op), ("register_model_cards", self.card),
                ("register_output_parsers", self.output_parser), ("register_tokenizers", self.tokenizer))

    def architecture(self, model_type, *, model, config_schema, rules=None, normalize=None, aliases=(), description=""):
        where = self._where("register_architectures")
        check_name(model_type, where, "model_type")
        check_target(model, where, "model")
        check_resource(config_schema, where, "config_schema", suffix=".json")
        check_schema_descriptions(config_schema, f"{where}: model_type {model_type!r}")
        if rules is not None:
            check_resource(rules, where, "rules", suffix=(".yaml", ".yml"))
        if normalize is not None:
            check_target(normalize, where, "normalize")
        check_names(aliases, where, f"aliases of {model_type!r}", "alias")
        check_description(description, where, model_type)
        self.architectures.append(
            Architecture(model_type, self.plugin, model, config_schema, rules, normalize, tuple(aliases), description, self.version)
        )

    def _named(self, kind, hook, bucket, name, target, description=""):
        where = self._where(hook)
        check_name(name, where, f"{kind} name")
        if kind == "component" and name.startswith(RESERVED_PREFIX) and not self.core:
            raise PluginError(f"{where}: component name {name!r} is in the namespace {RESERVED_PREFIX!r}, reserved for zoo's own components",
                              hint=f"name it after your plugin, e.g. {self.plugin + '.' + name[len(RESERVED_PREFIX):]!r}")
        check_target(target, where, kind)
        check_description(description, where, name)
        bucket.append(Named(kind, name, target, self.plugin, description))

    def component(self, name, target, description=""):
        self._named("component", "register_components", self.components, name, target, description)

    def op(self, name, target, description=""):
        self._named("sanitize op", "register_sanitize_ops", self.ops, name, target, description)

    def card(self, resource):
        where = self._where("register_model_cards")
        if not isinstance(resource, str) or not RESOURCE.match(resource):
            raise PluginError(f"{where}: card resource {resource!r} is not of the form 'package:path'")
        path = resource_path(resource)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
            root = path
        elif path.is_file():
            files, root = [path], path.parent
        else:
            raise PluginError(f"{where}: card resource {resource!r} does not exist ({path})")
        self.cards.extend(CardSource(f, self.plugin, root.resolve()) for f in files)


class Registry(TextLookups):
    """All registrations of one process. Use :func:`get_registry` for the shared instance."""

    def __init__(self):
        self.plugins: List[_plugins.PluginInfo] = []
        self.architectures: Dict[str, Architecture] = {}  # by name and alias, plugin-provided
        self.components: Dict[str, Named] = {}
        self.ops: Dict[str, Named] = {}
        self.output_parsers: Dict[str, OutputParser] = {}
        self._parser_for: Dict[str, str] = {}  # model_type -> output parser name
        self.tokenizers: Dict[str, Named] = {}  # by tokenizer class name
        self.plugin_cards: list = []  # cards.Card objects, parsed once when their plugin registered them
        self._card_owners: Dict[str, Tuple[str, str]] = {}  # plugin card name/alias -> (plugin, file name)
        self._builtins: Optional[Dict[str, Architecture]] = None
        self._cards: Optional[Catalogue] = None
        self._cards_key = None
        self.pm = _plugins.new_plugin_manager()
        core = _Staging(CORE, __version__, core=True)
        builtin_components.register_components(register=callback(core.component, "zoo's own components"))
        self._merge(core)

    # -- building ---------------------------------------------------------------------------
    @classmethod
    def discover(cls) -> "Registry":
        """Load every allowed ``zoo`` entry point and collect its registrations."""
        reg = cls()
        for info in _plugins.load_entry_points(reg.pm):
            reg.plugins.append(info)
            if info.status == "loaded":
                reg.add_plugin(reg.pm, info)
        return reg

    def register(self, plugin, name: str, version: Optional[str] = None) -> _plugins.PluginInfo:
        """Add a plugin object (a module or any object with hook implementations) by hand.

        Used by tests and embedding applications; entry-point plugins go through :meth:`discover`.
        Returns the plugin's status record (``status == "failed"`` with ``error`` on failure).
        """
        info = _plugins.PluginInfo(name=name, version=version, module=getattr(plugin, "__name__", repr(plugin)))
        self.plugins.append(info)
        if _plugins.register_plugin(self.pm, plugin, info):
            self.add_plugin(self.pm, info)
        return info

    def add_plugin(self, pm, info: _plugins.PluginInfo) -> bool:
        """Call one registered plugin's hooks and merge what it registered (all or nothing)."""
        stage = _Staging(info.name, info.version)
        try:
            for hook, method in stage.callbacks():
                _plugins.call_hook(pm, hook, info.name, callback(method, stage._where(hook)))
            self._merge(stage)
        except BaseException as e:  # noqa: BLE001 - a hook may raise anything
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            err = e if isinstance(e, ZooError) else PluginError(
                f"plugin {info.name!r} raised in a hook: {_plugins.describe_exception(e)}"
            )
            pm.unregister(name=info.name)
            _plugins.fail(info, err, e)
            return False
        return True

    def _merge(self, stage: _Staging):
        def owner(kind, name, existing):
            return DuplicateNameError(
                f"{kind} {name!r} is registered by both plugin {existing!r} and plugin {stage.plugin!r}",
                hint=f"uninstall one of them, or disable one with ZOO_DISABLED_PLUGINS={stage.plugin}",
            )

        new_arch = {}
        for arch in stage.architectures:
            for key in (arch.name, *arch.aliases):
                if key in self.architectures:
                    raise owner("architecture", key, self.architectures[key].provider)
                if key in new_arch:
                    raise owner("architecture", key, stage.plugin)
                new_arch[key] = arch
        for kind, bucket, items in (("component", self.components, stage.components), ("sanitize op", self.ops, stage.ops)):
            seen = set()
            for item in items:
                if item.name in bucket or item.name in seen:
                    raise owner(kind, item.name, bucket[item.name].provider if item.name in bucket else stage.plugin)
                seen.add(item.name)
        parser_for = check_text_kinds(self, stage, owner)
        new_cards, parsed = {}, []
        for src in stage.cards:
            card = read_card(src.path, f"plugin:{src.origin}", src.trusted_root)  # ConfigError fails the plugin
            parsed.append(card)
            for key in (card.name, *card.aliases):
                other = self._card_owners.get(key) or new_cards.get(key)
                if other is not None:
                    raise DuplicateNameError(
                        f"model card {key!r} is registered by both plugin {other[0]!r} ({other[1]}) "
                        f"and plugin {stage.plugin!r} ({src.path.name})",
                        hint=f"uninstall one of them, or disable one with ZOO_DISABLED_PLUGINS={stage.plugin}",
                    )
                new_cards[key] = (src.origin, src.path.name)
        self.architectures.update(new_arch)
        self._card_owners.update(new_cards)
        self.components.update({c.name: c for c in stage.components})
        self.ops.update({o.name: o for o in stage.ops})
        merge_text_kinds(self, stage, parser_for)
        self.plugin_cards.extend(parsed)
        self._cards = None

    # -- architectures ----------------------------------------------------------------------
    def builtin_architectures(self) -> Dict[str, Architecture]:
        """mlx-lm's model modules, found by listing files (mlx-lm itself is not imported)."""
        if self._builtins is None:
            self._builtins = scan_mlx_lm(Architecture)
        return self._builtins

    def architecture(self, model_type: str) -> Architecture:
        """The architecture serving ``model_type``: a plugin's first, then mlx-lm's."""
        if model_type in self.architectures:
            return self.architectures[model_type]
        builtins = self.builtin_architectures()
        if model_type in builtins:
            return builtins[model_type]
        known = set(self.architectures) | set(builtins)
        failed = [p.name for p in self.plugins if p.status == "failed"]
        hint = "run `zoo list` to see the architectures installed plugins serve"
        if failed:
            hint += f"; these plugins failed to load: {', '.join(failed)} (see `zoo plugins`)"
        raise UnknownNameError(f"no installed plugin serves model_type {model_type!r}{did_you_mean(model_type, known)}", hint=hint)

    def list_architectures(self) -> List[dict]:
        """Every architecture once, plugin-provided and built-in, with the built-ins a plugin shadows."""
        builtins = self.builtin_architectures()
        rows = {}
        for arch in self.architectures.values():
            shadowed = sorted({builtins[k].name for k in (arch.name, *arch.aliases) if k in builtins})
            rows[arch.name] = dict(arch.as_dict(), shadows=[f"{BUILTIN_PROVIDER}:{n}" for n in shadowed])
        for arch in builtins.values():
            if arch.name not in self.architectures and arch.name not in rows:
                rows[arch.name] = dict(arch.as_dict(), shadows=[])
        return [rows[k] for k in sorted(rows)]

    # -- components and ops -----------------------------------------------------------------
    def component(self, name: str) -> Named:
        """The component registered as ``name``; a pre-namespace name of zoo's own warns and still answers."""
        if name not in self.components and name in builtin_components.DEPRECATED_NAMES:
            new = builtin_components.DEPRECATED_NAMES[name]
            warnings.warn(f"component {name!r} is deprecated: use {new!r} (zoo registers its own components under "
                          f"{RESERVED_PREFIX!r})", ZooWarning, stacklevel=3)
            name = new
        if name not in self.components:
            raise UnknownNameError(f"no plugin registered a component {name!r}{did_you_mean(name, self.components)}")
        return self.components[name]

    def op(self, name: str) -> Named:
        if name not in self.ops:
            raise UnknownNameError(f"no plugin registered a sanitize op {name!r}{did_you_mean(name, self.ops)}")
        return self.ops[name]

    # -- cards --------------------------------------------------------------------------------
    def cards(self) -> Catalogue:
        """The model-card catalogue (plugin cards and user card directories), parsed lazily.

        Rebuilt when the user card directories change: another ``ZOO_CARDS_PATH`` or
        ``XDG_CONFIG_HOME``, or a card added to or removed from one of the folders.
        """
        key = catalogue_key()
        if self._cards is None or self._cards_key != key:
            self._cards, self._cards_key = Catalogue.build(self.plugin_cards), key
        return self._cards


_REGISTRY: Optional[Registry] = None


def get_registry() -> Registry:
    """The process-wide registry, discovered on first use."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = Registry.discover()
    return _REGISTRY


def reset_registry(registry: Optional[Registry] = None) -> None:
    """Drop (or replace) the process-wide registry; the next :func:`get_registry` rediscovers."""
    global _REGISTRY
    _REGISTRY = registry
