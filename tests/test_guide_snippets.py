"""Every code block of docs/plugin-guide.md runs (issue 14: a snippet that only *appears* verbatim in
the example plugin can still be wrong, as the ``zoo_tiny_checkpoint`` signature was).

tests/test_docs.py checks that each marked block is verbatim in its file; this module executes each
block, by kind:

- ``bash``: every command runs (``zoo ...`` through the installed console script, the plugin's own
  test suite through pytest) and its output shows what the comment beside it promises;
- ``python``: a block that is a whole definition is executed from the guide's own text; a fragment
  runs inside the definition of its file that contains it. Each definition is then called: a hook
  with a recording ``register`` (and compared with the plugin's), a class instantiated and run, a
  test function with zoo's real fixtures;
- ``json``/``yaml``/``ini``/``toml``: parsed and checked by what reads them (JSON Schema check,
  zoo's rule parser, the card schema, the installed entry points, the build backend's import);
- ``text`` (the layout tree): every file it names exists.
"""

import ast
import configparser
import importlib
import importlib.metadata
import importlib.util
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import mlx.core as mx
import pytest
import yaml

import guide_model_drivers
from test_docs import ROOT, snippets

try:
    import tomllib
except ImportError:  # Python 3.10: the same parser, as pip vendors it
    from pip._vendor import tomli as tomllib

BLOCKS = [s for s in snippets() if s[1]]
EXAMPLE = ROOT / "examples" / "zoo-llama"
ZOO = str(Path(sys.executable).parent / "zoo")


# -- bash -------------------------------------------------------------------------------------------

def _run(args, timeout=300):
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def _pip_install(rest):
    """Installing is not repeated in a test: check the distribution is installed from that folder."""
    assert rest == ["./examples/zoo-llama"], rest
    dist = importlib.metadata.distribution("zoo-llama")
    direct = json.loads(dist.read_text("direct_url.json") or "{}")
    assert direct.get("url", "").rstrip("/").endswith("examples/zoo-llama"), f"zoo-llama is not installed from ./examples/zoo-llama: {direct}"
    return ""


def _zoo(rest):
    out = _run([ZOO, *rest])
    assert out.returncode == 0, out.stderr
    return out.stdout


def _pytest(rest):
    out = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *rest[3:]])
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    return out.stdout


COMMANDS = {  # command -> (runner, what its output must show, as the guide's comment says)
    "pip install ./examples/zoo-llama": (lambda a: _pip_install(a[2:]), []),
    "zoo list zoo_llama": (lambda a: _zoo(a[1:]), [r"zoo_llama\b.*zoo-llama"]),
    "zoo plugins": (lambda a: _zoo(a[1:]), [r"zoo-llama\s+0\.1\.0\s+loaded"]),
    "python -m pytest examples/zoo-llama/tests": (_pytest, [r"\d+ passed"]),
}


def run_bash(path, body, request):
    for line in body.splitlines():
        command = line.split("#", 1)[0].strip()
        if not command:
            continue
        assert command in COMMANDS, f"the guide runs `{command}`: teach tests/test_guide_snippets.py to run it"
        runner, expected = COMMANDS[command]
        output = runner(command.split())
        for pattern in expected:
            assert re.search(pattern, output), f"`{command}` printed no line matching {pattern!r}:\n{output}"


# -- the layout tree --------------------------------------------------------------------------------

def run_text(path, body, request):
    lines = body.splitlines()
    root = ROOT / lines[0].strip()
    assert root.is_dir(), root
    stack = [(0, root)]
    for line in lines[1:]:
        depth = (len(line) - len(line.lstrip())) // 2
        name = line.split()[0]
        while stack[-1][0] >= depth:
            stack.pop()
        target = stack[-1][1] / name.rstrip("/")
        assert list(target.parent.glob(target.name)), f"the layout names {target.relative_to(ROOT)}, which does not exist"
        if name.endswith("/"):
            stack.append((depth, target))


# -- data files -------------------------------------------------------------------------------------

def run_ini(path, body, request):
    parser = configparser.ConfigParser()
    parser.read_string(body)
    installed = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="zoo")}
    for line in parser["options.entry_points"]["zoo"].strip().splitlines():
        name, value = (p.strip() for p in line.split("="))
        assert installed.get(name) == value, f"entry point {name} = {value} is not installed ({installed})"
        importlib.import_module(value)


def run_toml(path, body, request):
    data = tomllib.loads(body)
    importlib.import_module(data["build-system"]["build-backend"])


def _json_object(body):
    text = body.strip()
    return json.loads(text if text.startswith("{") and text.endswith("}") else "{" + text.rstrip(",") + "}")


def run_json(path, body, request):
    from jsonschema import Draft202012Validator

    from zoo_registry.schema import CHECKPOINT_SCHEMA_ID, errors_for, load_schema

    fragment = _json_object(body)
    if "$ref" in fragment:  # the base-schema fragment: the whole file is a working architecture schema
        assert fragment == {"$ref": CHECKPOINT_SCHEMA_ID, "unevaluatedProperties": False}
        schema = load_schema(str(ROOT / path))
        config = {"model_type": "minimal_llama", "vocab_size": 64, "hidden_size": 64, "intermediate_size": 96,
                  "num_hidden_layers": 2, "num_attention_heads": 4, "torch_dtype": "bfloat16",
                  "quantization": {"group_size": 64, "bits": 4}, "architectures": ["LlamaForCausalLM"]}
        assert errors_for(config, schema) == []
        assert errors_for(dict(config, rms_norm_epz=1e-5), schema) == ["$.rms_norm_epz: unknown key (did you mean 'rms_norm_eps'?)"]
        return
    for key, spec in fragment.items():  # property definitions of a config schema
        Draft202012Validator.check_schema(spec)
        assert spec.get("description"), f"{key} has no description"
        if "default" in spec:
            assert errors_for(spec["default"], spec) == [], f"{key}: the default does not satisfy its own schema"


def run_yaml(path, body, request):
    data = yaml.safe_load(body)
    if "/rules/" in path:
        from zoo_registry import get_registry
        from zoo_registry.sanitize.rules import parse_rules

        ruleset = parse_rules({"version": 1, "rules": data}, path, get_registry())  # the plugins' ops are in the registry
        assert [r.name for r in ruleset.rules] == [r["name"] for r in data]
    elif "/cards/" in path:
        from zoo_registry.schema import framework_schema_path, load_schema, validate

        card = dict(data, name=Path(path).stem)
        validate(card, load_schema(str(framework_schema_path("card"))), path, "model card")
    else:
        raise AssertionError(f"no runner for YAML from {path}")


# -- python -----------------------------------------------------------------------------------------

def _module(path):
    rel = Path(path)
    if rel.parts[:3] == ("examples", "zoo-llama", "zoo_llama"):
        return importlib.import_module(".".join(rel.with_suffix("").parts[2:]))
    spec = importlib.util.spec_from_file_location("guide_" + rel.stem, ROOT / rel)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _definition(path, body):
    """The top-level definition of ``path`` that contains the block (the block itself when it is a
    whole definition; tests/test_docs.py checks that it is verbatim there): ``(name, source)``."""
    source = (ROOT / path).read_text(encoding="utf-8")
    first = source[:source.index(body)].count("\n") + 1
    last = first + body.count("\n")
    for node in ast.parse(source).body:
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        if start <= first and last <= node.end_lineno:
            name = node.name if hasattr(node, "name") else node.targets[0].id
            return name, "\n".join(source.splitlines()[start - 1:node.end_lineno])
    raise AssertionError(f"{path}: the snippet is not inside one top-level definition")


def _recorded(hook):
    calls = []
    hook(lambda *args, **kwargs: calls.append((args, kwargs)))
    return calls


def _drive(path, name, obj, module, request):
    from zoo_registry.testing import run_model_tests

    tmp_path = request.getfixturevalue("tmp_path")
    if name.startswith("register_"):
        calls = _recorded(obj)
        assert calls and calls == _recorded(getattr(module, name))
    elif name == "DecoderLayer":
        from zoo_llama.config import normalize

        cfg = normalize({"model_type": "zoo_llama", "vocab_size": 64, "hidden_size": 64, "intermediate_size": 96,
                         "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2})
        rope = module.make_rope(cfg["head_dim"], cfg["rope_theta"], cfg["rope_scaling"])
        layer, reference = obj(cfg, rope), module.DecoderLayer(cfg, rope)
        reference.update(layer.parameters())
        x = mx.random.normal((1, 5, 64))
        assert mx.array_equal(layer(x), reference(x))
    elif name == "InterleavedToHalves":
        import numpy as np

        x = np.arange(8 * 3).reshape(8, 3)  # 2 heads of 4 rows: pairs (0, 1), (2, 3) -> halves 0, 2 | 1, 3
        (y,) = obj(num_heads=2).forward(np, [x])
        assert (y[:4] == x[[0, 2, 1, 3]]).all() and (y[4:] == x[[4, 6, 5, 7]]).all()
        assert (obj(num_heads=2).inverse().forward(np, [y])[0] == x).all()
    elif name == "OUTPUT_FORMAT":
        assert obj == module.OUTPUT_FORMAT and obj.reasoning == ("<think>", "</think>")
    elif name == "qwen_recipe":
        assert obj(tmp_path, {}) is None
        (tmp_path / "qwen.tiktoken").write_text("YQ== 0\nYg== 1\n")
        assert obj(tmp_path, {}).eos_token == "<|endoftext|>"
    elif name == "normalize":
        from zoo_registry import ConfigError

        base = {"model_type": "zoo_llama", "vocab_size": 8, "hidden_size": 8, "intermediate_size": 8,
                "num_hidden_layers": 1, "num_attention_heads": 4}
        assert obj(dict(base))["num_key_value_heads"] == 4
        with pytest.raises(ConfigError, match=r"\$\.num_attention_heads: 4 is not divisible by num_key_value_heads 3"):
            obj(dict(base, num_key_value_heads=3))
    elif name.startswith("test_"):
        request.getfixturevalue("zoo_registry")  # the isolation the plugin's tests run with
        fixtures = {"zoo_model_tests": lambda *a, **k: run_model_tests(*a, tmp_path=tmp_path, **k),
                    "zoo_tiny_checkpoint": request.getfixturevalue("zoo_tiny_checkpoint"),
                    "zoo_registry": request.getfixturevalue("zoo_registry"), "name": "llama"}
        import inspect

        obj(**{p: fixtures[p] for p in inspect.signature(obj).parameters})
    elif name in guide_model_drivers.DRIVERS:  # the whole model, the card generator, a renamed component
        guide_model_drivers.DRIVERS[name](obj, module, tmp_path)
    else:
        raise AssertionError(f"{path}: no driver calls {name}; add one")


def run_python(path, body, request):
    module = _module(path)
    name, source = _definition(path, body)
    namespace = dict(vars(module))
    exec(compile(textwrap.dedent(source), f"{path} (as in docs/plugin-guide.md)", "exec"), namespace)
    _drive(path, name, namespace[name], module, request)


RUNNERS = {"bash": run_bash, "text": run_text, "ini": run_ini, "toml": run_toml, "json": run_json,
           "yaml": run_yaml, "python": run_python}


def test_the_guide_has_runnable_blocks_of_every_kind():
    assert {lang for _, lang, _ in BLOCKS} <= set(RUNNERS), "a code block of a kind nothing runs"
    assert sum(1 for _, lang, _ in BLOCKS if lang == "python") >= 10


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=[f"{i}-{lang}-{Path(p or 'guide').name}" for i, (p, lang, _) in enumerate(BLOCKS)])
def test_code_block_runs(index, request):
    path, lang, body = BLOCKS[index]
    RUNNERS[lang](path, body, request)
