"""setup.cfg lists its packages by hand: every Python package of the source tree must be in it.

An editable install finds a package that setup.cfg forgot; a real ``pip install .`` (what users and
CI run) does not, and the package is simply missing from site-packages.
"""

import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_of_the_tree_is_in_setup_cfg():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    listed = set(cfg["options"]["packages"].split())
    dirs = dict(line.split("=") for line in cfg["options"]["package_dir"].strip().splitlines())
    roots = {name.strip(): ROOT / path.strip() for name, path in dirs.items()}
    roots.setdefault("zoo_registry", ROOT / "zoo_registry")
    found = set()
    for name, root in roots.items():
        for init in root.rglob("__init__.py"):
            rel = init.parent.relative_to(root)
            found.add(".".join([name, *rel.parts]))
    assert found - listed == set(), f"add these to [options] packages in setup.cfg: {sorted(found - listed)}"
