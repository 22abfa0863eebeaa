"""Entry-point discovery with per-plugin isolation.

pluggy's ``load_setuptools_entrypoints`` stops at the first plugin that fails to import. zoo
iterates the ``zoo`` entry-point group itself instead, so that each plugin gets a status:

- ``loaded``: imported, hooks called, registrations accepted;
- ``failed``: import error, error raised inside a hook, invalid or duplicate registration
  (the error is kept and shown by ``zoo plugins``; the other plugins keep working);
- ``skipped``: excluded by ``ZOO_LOAD_PLUGINS`` (allow-list; ``''`` loads none) or
  ``ZOO_DISABLED_PLUGINS`` (block-list), both comma-separated.

``ZOO_STRICT_PLUGINS=1`` re-raises the first failure instead; ``ZOO_TRACE_PLUGINS=1`` logs every
hook call to stderr. A hook implementation whose name is not in ``hookspecs`` fails its plugin
(``pm.check_pending()``), naming the misspelled hook.
"""

from __future__ import annotations

import os
import sys
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from typing import List, Optional

import pluggy

from . import hookspecs
from .errors import PluginError, ZooError

GROUP = "zoo"
HOOKS = ("register_architectures", "register_components", "register_sanitize_ops", "register_model_cards", "register_tokenizers")


@dataclass
class PluginInfo:
    """What ``zoo plugins`` shows for one entry point."""

    name: str
    version: Optional[str]
    module: str
    distribution: Optional[str] = None
    status: str = "loaded"  # loaded | failed | skipped
    error: Optional[str] = None
    hooks: List[str] = field(default_factory=list)
    exception: Optional[BaseException] = field(default=None, repr=False, compare=False)

    def as_dict(self):
        return {
            "name": self.name,
            "version": self.version,
            "module": self.module,
            "distribution": self.distribution,
            "status": self.status,
            "hooks": self.hooks,
            "error": self.error,
        }


def _env_list(name: str):
    """``None`` when unset, else the set of comma-separated names (``''`` is the empty set)."""
    value = os.environ.get(name)
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


def strict() -> bool:
    return os.environ.get("ZOO_STRICT_PLUGINS", "") not in ("", "0", "false", "no")


def _trace() -> bool:
    return os.environ.get("ZOO_TRACE_PLUGINS", "") not in ("", "0", "false", "no")


def describe_exception(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, ZooError):
        return text
    return f"{type(exc).__name__}: {text}"


def new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    return pm


def entry_points():
    """The installed ``zoo`` entry points in name order, deduplicated (first on ``sys.path`` wins).

    Name order makes duplicate-name failures deterministic: of two plugins registering the same
    name, the one whose entry-point name sorts later is the one that fails.
    """
    seen = {}
    for ep in metadata.entry_points(group=GROUP):
        seen.setdefault(ep.name, ep)
    return [seen[name] for name in sorted(seen)]


def load_entry_points(pm: pluggy.PluginManager) -> List[PluginInfo]:
    """Import and register every allowed entry point; never raises unless strict mode is on."""
    allow = _env_list("ZOO_LOAD_PLUGINS")
    deny = _env_list("ZOO_DISABLED_PLUGINS") or set()
    infos = []
    for ep in entry_points():
        dist = getattr(ep, "dist", None)
        info = PluginInfo(
            name=ep.name,
            version=dist.version if dist is not None else None,
            module=ep.value,
            distribution=dist.metadata["Name"] if dist is not None else None,
        )
        infos.append(info)
        if allow is not None and ep.name not in allow:
            info.status, info.error = "skipped", "not in ZOO_LOAD_PLUGINS"
            continue
        if ep.name in deny:
            info.status, info.error = "skipped", "listed in ZOO_DISABLED_PLUGINS"
            continue
        try:
            plugin = ep.load()
        except BaseException as e:  # noqa: BLE001 - a plugin may raise anything on import
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            fail(info, PluginError(f"plugin {ep.name!r} failed to import ({ep.value}): {describe_exception(e)}"), e)
            continue
        register_plugin(pm, plugin, info)
    return infos


def register_plugin(pm: pluggy.PluginManager, plugin, info: PluginInfo) -> bool:
    """Register one plugin object with ``pm`` and check its hook names; record failures."""
    try:
        pm.register(plugin, name=info.name)
        pm.check_pending()
    except pluggy.PluginValidationError as e:
        if pm.is_registered(plugin):
            pm.unregister(plugin)
        fail(info, PluginError(f"plugin {info.name!r} is invalid: {e}", hint=f"valid hooks: {', '.join(HOOKS)}"), e)
        return False
    except ValueError as e:  # the same name or object registered twice
        fail(info, PluginError(f"plugin {info.name!r} could not be registered: {e}"), e)
        return False
    info.hooks = sorted(
        hook for hook in HOOKS if any(impl.plugin is plugin for impl in getattr(pm.hook, hook).get_hookimpls())
    )
    return True


def fail(info: PluginInfo, error: ZooError, cause: Optional[BaseException] = None):
    """Mark a plugin as failed; in strict mode raise instead."""
    info.status = "failed"
    info.error = str(error)
    info.exception = cause or error
    if _trace() and cause is not None:
        traceback.print_exception(type(cause), cause, cause.__traceback__, file=sys.stderr)
    if strict():
        raise error from cause


def call_hook(pm: pluggy.PluginManager, hook: str, plugin_name: str, register):
    """Call ``hook`` of one plugin only, with the ``register`` callback bound to that plugin."""
    for impl in getattr(pm.hook, hook).get_hookimpls():
        if impl.plugin_name != plugin_name:
            continue
        if _trace():
            print(f"zoo: calling {plugin_name}.{hook}", file=sys.stderr)
        result = impl.function(register=register)
        if result is not None:
            raise PluginError(
                f"plugin {plugin_name!r}: hook {hook} returned {type(result).__name__}; "
                "hooks must call register(...) and return None"
            )
