"""A checkpoint folder laid out like Hunyuan-A13B-Instruct, small, whose greedy output is scripted.

Built from ``hunyuan-tiny`` (its real HunYuan-Large-style weights and BPE tokenizer) with:

- Tencent's real A13B chat template in ``tokenizer_config.json`` (read from the A13B release's
  ``tokenizer_config.json`` kept in ``../shared/data/hunyuan/a13b/``);
- a ``generation_config.json`` with A13B's sampling defaults and a list of end-of-turn ids;
- an untied output head solved so that, after the thinking-mode prompt for ``PROMPT``, the model
  writes :data:`SCRIPT` token by token (tags split across tokens, as real models split them), then
  the listed stop token, then text that must never appear. The head rows of the scripted tokens are
  ``β · onehot(target) · pinv(H)`` over the model's own final hidden states ``H`` at those positions,
  so every other block of the real model still runs; the margin β dwarfs sampling noise.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "Hello"
REASONING, ANSWER = "The cache is small.", "Hello, world."
SCRIPT = f"<think>\n{REASONING}\n</think>\n<answer>\n{ANSWER}\n</answer>"
AFTER_STOP = " junk after the stop"
SAMPLING = {"do_sample": True, "temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.05}


def release_file(release: str, name: str) -> Path:
    """A file of one of Tencent's releases (``a13b``, ``large``) from ``../shared/data/hunyuan/RELEASE``
    (or ``$ZOO_HUNYUAN_DATA/RELEASE``); fail under CI when it is missing, skip elsewhere."""
    bases = [Path(os.environ["ZOO_HUNYUAN_DATA"])] if os.environ.get("ZOO_HUNYUAN_DATA") else []
    bases += [ROOT.parent / "shared" / "data" / "hunyuan", ROOT.parent.parent / "shared" / "data" / "hunyuan"]
    for base in bases:
        if (base / release / name).is_file():
            return base / release / name
    if os.environ.get("CI"):
        pytest.fail(f"../shared/data/hunyuan/{release}/{name} is missing (CI must have it)")
    pytest.skip(f"../shared/data/hunyuan/{release}/{name} not found")


def require_module(name: str, why: str) -> None:
    """Skip when module ``name`` is not installed; fail under CI, where the install provides it."""
    import importlib.util

    try:
        found = importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # its package is missing too
        found = False
    if found:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{name} is missing ({why}); CI must have it", pytrace=False)
    pytest.skip(f"{name} not found ({why})")


def a13b_file(name: str) -> Path:
    """A file of Tencent's Hunyuan-A13B release (see :func:`release_file`)."""
    return release_file("a13b", name)


def a13b_tokenizer_config() -> dict:
    return json.loads(a13b_file("tokenizer_config.json").read_text(encoding="utf-8"))


def transformers_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))


def transformers_ids(folder: Path, messages, **kwargs):
    ids = transformers_tokenizer(folder).apply_chat_template(messages, add_generation_prompt=True, tokenize=True, **kwargs)
    return list(ids["input_ids"] if hasattr(ids, "keys") else ids)


def build(folder: Path, beta: float = 200.0) -> dict:
    """Write the scripted checkpoint into ``folder``; return facts the tests check against."""
    from zoo_hunyuan import tiny

    template = a13b_tokenizer_config()["chat_template"]
    tiny.generate(folder, seed=0)
    tok_config = json.loads((folder / "tokenizer_config.json").read_text())
    tok_config["chat_template"] = template
    (folder / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2, ensure_ascii=False))
    config = json.loads((folder / "config.json").read_text())
    eos, stop = config["eos_token_id"], config["pad_token_id"]  # <|eos|>, and <|pad|> as a second end of turn
    (folder / "generation_config.json").write_text(json.dumps({**SAMPLING, "eos_token_id": [eos, stop]}))

    hf = transformers_tokenizer(folder)
    prompt_ids = transformers_ids(folder, [{"role": "user", "content": PROMPT}])  # thinking mode: the template's default
    script_ids = hf.encode(SCRIPT, add_special_tokens=False)
    after_ids = hf.encode(AFTER_STOP, add_special_tokens=False)
    targets = script_ids + [stop] + after_ids

    from zoo_hunyuan.scripted import script_head

    script_head(folder, prompt_ids, targets, beta)
    return {"prompt_ids": prompt_ids, "script_ids": script_ids, "stop": stop, "eos": eos}


@pytest.fixture
def run(isolated_home, monkeypatch, capsys):
    """``run(*args)``: ``zoo generate ARGS`` through the CLI's ``main`` in this process; its captured output."""
    from zoo_registry.cli.main import main

    monkeypatch.setenv("ZOO_PROGRESS", "0")
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "error")

    def run(*args):
        code = main(["generate", *map(str, args)])
        out = capsys.readouterr()
        assert code == 0, out.err
        return out

    return run
