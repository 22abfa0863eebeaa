"""The HunYuan config schemas have one source of truth (issue 14's review: two hand-edited copies
had drifted apart): ``plugin/zoo_hunyuan/schemas/source/`` generates both, and the checked-in files
must be exactly what the generator writes."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "plugin" / "zoo_hunyuan" / "schemas"


def _generator():
    spec = importlib.util.spec_from_file_location("hunyuan_schema_generate", SCHEMAS / "source" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_regenerating_the_schemas_changes_nothing():
    outputs = _generator().outputs()
    assert sorted(p.name for p in outputs) == ["hunyuan.config.schema.json", "hunyuan_v1_dense.config.schema.json"]
    for path, text in outputs.items():
        assert path.read_text(encoding="utf-8") == text, f"{path.name} differs from its source: run python {SCHEMAS / 'source' / 'generate.py'}"


def test_shared_keys_are_defined_once_and_variants_hold_only_their_differences():
    common = json.loads((SCHEMAS / "source" / "common.json").read_text())
    moe = json.loads((SCHEMAS / "source" / "hunyuan.json").read_text())
    dense = json.loads((SCHEMAS / "source" / "hunyuan_v1_dense.json").read_text())
    for variant in (moe, dense):
        for key, spec in variant["properties"].items():
            assert common["properties"].get(key) != spec, f"{key} repeats common.json verbatim"
    # the dense variant restricts the MoE keys deliberately, in one visible place
    assert dense["properties"]["moe_topk"]["const"] == 1 and "oneOf" in moe["properties"]["moe_topk"]
    assert len(common["properties"]) > len(moe["properties"]) > len(dense["properties"])


def test_the_plugin_loads_the_generated_files_and_there_is_one_copy():
    from zoo_registry.resources import resource_path

    for name in ("hunyuan", "hunyuan_v1_dense"):
        path = Path(resource_path(f"zoo_hunyuan:schemas/{name}.config.schema.json"))
        # the installed copy (site-packages under `pip install .`, the tree under -e) is the generated file
        assert path.read_bytes() == (SCHEMAS / f"{name}.config.schema.json").read_bytes()
        assert not (SCHEMAS / f"{name}.config.schema.json").is_symlink() and not SCHEMAS.is_symlink()
    assert not (ROOT / "schemas" / "hunyuan").exists()
