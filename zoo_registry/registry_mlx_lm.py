"""mlx-lm's own architectures, found by listing its ``models`` folder (mlx-lm is not imported).

The registry serves them with lower precedence than any plugin's (provider ``mlx-lm``).
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from typing import Dict


def scan_mlx_lm(architecture) -> Dict[str, object]:
    """``model_type -> architecture(name, provider, ...)`` for every mlx-lm model module and alias."""
    spec = importlib.util.find_spec("mlx_lm")
    if spec is None or not spec.submodule_search_locations:
        return {}
    root = Path(list(spec.submodule_search_locations)[0])
    version = None
    try:
        from importlib.metadata import version as _v

        version = _v("mlx-lm")
    except Exception:  # noqa: BLE001 - metadata may be missing in odd installs
        pass
    archs = {}
    for path in sorted((root / "models").glob("*.py")):
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            continue
        if "class Model(" in text and "class ModelArgs" in text:
            archs[path.stem] = architecture(path.stem, "mlx-lm", provider_version=version)
    aliases = {}
    for alias, target in _mlx_lm_remapping(root / "utils.py").items():
        if target in archs and alias not in archs:
            aliases.setdefault(target, []).append(alias)
    for target, names in aliases.items():
        arch = architecture(target, "mlx-lm", aliases=tuple(sorted(names)), provider_version=version)
        archs[target] = arch
        archs.update({name: arch for name in names})
    return archs


def _mlx_lm_remapping(utils_py: Path) -> Dict[str, str]:
    """Read mlx-lm's ``MODEL_REMAPPING`` literal without importing mlx-lm."""
    try:
        tree = ast.parse(utils_py.read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "MODEL_REMAPPING" for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return {}
            return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}
    return {}


