"""Keep the plugin author guide true (datasette's documentation-as-contract pattern).

- every hook in hookspecs.py is a ``### name(args)`` heading of docs/plugin-guide.md with its exact
  signature, followed by the exact signature of the ``register`` callback the registry passes;
- every hook has a ``test_hook_<name>`` in tests/test_hooks.py;
- every code block marked ``<!-- snippet: PATH -->`` is verbatim in PATH, a file of the example
  plugin (whose package and tests the suite runs) or of docs/examples/, and every
  Python/YAML/JSON/INI/TOML block is marked (tests/test_guide_snippets.py runs them all);
- docs/architecture.md has its two Mermaid diagrams.
"""

import inspect
import re
from pathlib import Path

import pytest

from zoo_registry import hookspecs
from zoo_registry.registry import _Staging

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "plugin-guide.md"
FENCE = re.compile(r"(?:<!-- snippet: (?P<path>\S+) -->\n)?```(?P<lang>[a-z]*)\n(?P<body>.*?)\n```", re.S)
CHECKED_LANGS = {"python", "yaml", "json", "ini", "toml"}
# hook -> the _Staging method the registry binds as its ``register`` callback (see Registry.add_plugin)
CALLBACKS = {
    "register_architectures": _Staging.architecture,
    "register_components": _Staging.component,
    "register_sanitize_ops": _Staging.op,
    "register_model_cards": _Staging.card,
    "register_output_parsers": _Staging.output_parser,
    "register_tokenizers": _Staging.tokenizer,
}


def hooks():
    return sorted(n for n, f in vars(hookspecs).items() if inspect.isfunction(f) and n.startswith("register_"))


def callback_signature(method) -> str:
    sig = inspect.signature(method)
    params = [p for name, p in sig.parameters.items() if name != "self"]
    return f"register{sig.replace(parameters=params)}"


def guide_sections() -> dict:
    """``### heading`` -> the text up to the next heading of level 2 or 3."""
    text = GUIDE.read_text(encoding="utf-8")
    parts = re.split(r"^(#{2,3} .*)$", text, flags=re.M)
    return {parts[i][4:].strip() if parts[i].startswith("### ") else parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def test_every_hook_has_a_callback_mapping():
    assert sorted(CALLBACKS) == hooks()


@pytest.mark.parametrize("hook", hooks())
def test_guide_documents_each_hook_with_its_exact_signatures(hook):
    heading = f"{hook}{inspect.signature(getattr(hookspecs, hook))}"
    sections = guide_sections()
    assert heading in sections, f"docs/plugin-guide.md needs a heading '### {heading}'"
    body = sections[heading]
    assert f"`{callback_signature(CALLBACKS[hook])}`" in body, f"'### {heading}' must give `{callback_signature(CALLBACKS[hook])}`"
    for name, param in inspect.signature(CALLBACKS[hook]).parameters.items():
        if name != "self":
            assert f"- `{name}`" in body, f"'### {heading}' must describe the argument {name!r}"
    assert "validates" in body, f"'### {heading}' must say what the registry validates"
    assert "<!-- snippet:" in body, f"'### {heading}' needs a runnable example from the example plugin"


def test_guide_has_no_heading_for_a_hook_that_does_not_exist():
    documented = {h.split("(")[0] for h in guide_sections() if h.startswith("register_")}
    assert documented == set(hooks())


@pytest.mark.parametrize("hook", hooks())
def test_each_hook_has_a_test_of_its_own(hook):
    """A test function pytest collects from tests/test_hooks.py (imported, not grepped: a comment or a
    string naming it does not count)."""
    import importlib

    test = getattr(importlib.import_module("test_hooks"), f"test_hook_{hook}", None)
    assert inspect.isfunction(test) and test.__module__ == "test_hooks", f"tests/test_hooks.py needs test_hook_{hook}"


def snippets():
    text = GUIDE.read_text(encoding="utf-8")
    return [(m.group("path"), m.group("lang"), m.group("body")) for m in FENCE.finditer(text)]


def test_guide_code_blocks_are_marked_snippets():
    unmarked = [body[:60] for path, lang, body in snippets() if lang in CHECKED_LANGS and path is None]
    assert not unmarked, f"code blocks without a '<!-- snippet: PATH -->' marker: {unmarked}"
    assert sum(1 for path, _, _ in snippets() if path) >= 10


@pytest.mark.parametrize("path, lang, body", [s for s in snippets() if s[0]], ids=lambda v: v if isinstance(v, str) and "/" in v else None)
def test_snippet_is_verbatim_in_a_tested_example_file(path, lang, body):
    assert path.startswith(("examples/zoo-llama/", "docs/examples/")), f"{path}: snippets must come from the tested example plugin or docs/examples/"
    source = ROOT / path
    assert source.is_file(), f"{path} does not exist"
    assert body in source.read_text(encoding="utf-8"), f"snippet no longer verbatim in {path}:\n{body}"


def test_example_plugin_is_tested():
    """The example files snippets come from are what runs: the installed zoo_llama package is made of
    those very files, and the example's own tests are in the suite's testpaths (CI runs them)."""
    import configparser

    import zoo_llama

    installed = Path(zoo_llama.__file__).resolve().parent
    quoted = sorted({path for path, _, _ in snippets() if path and path.startswith("examples/zoo-llama/")})
    package = [p for p in quoted if p.startswith("examples/zoo-llama/zoo_llama/")]
    assert package and any(p.startswith("examples/zoo-llama/tests/") for p in quoted)
    for path in package:
        copy = installed / Path(path).relative_to("examples/zoo-llama/zoo_llama")
        assert copy.read_bytes() == (ROOT / path).read_bytes(), f"the installed zoo_llama differs from {path}: reinstall it"
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg", encoding="utf-8")
    assert "examples/zoo-llama/tests" in cfg["tool:pytest"]["testpaths"].split()


def test_architecture_doc_has_its_diagrams():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    diagrams = re.findall(r"```mermaid\n(.*?)\n```", text, re.S)
    assert len(diagrams) >= 2
    flow, layer = diagrams[0], diagrams[1]
    for step in ("card", "registry", "schema", "normalize", "rules", "runtime", "model", "generat"):
        assert step in flow.lower(), f"the load-flow diagram does not show {step!r}"
    for part in ("CLA", "shared", "expert", "router", "key_layernorm"):
        assert part.lower() in layer.lower(), f"the HunYuan layer diagram does not show {part!r}"
