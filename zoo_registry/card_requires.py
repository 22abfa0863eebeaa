"""A model card's ``requires``: the zoo plugins, ``zoo`` itself and Python packages it needs.

Each entry is a name and a PEP 440 specifier (``hunyuan: ">=0.1"``). A zoo plugin is looked up in
the registry's plugin records (so a failed or disabled plugin is named as such); ``zoo`` /
``zoo-mlx`` is zoo's own version; anything else is an installed distribution. Specifiers are
checked with ``packaging`` when it is importable, else with a PEP 440 subset.
"""

from __future__ import annotations

import re
from typing import Optional

from ._version import __version__
from .errors import ConfigError, PluginError

_ZOO_NAMES = ("zoo", "zoo-mlx")


def check_requires(card, registry) -> None:
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
