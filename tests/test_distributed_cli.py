"""The real ``zoo`` command on two ranks (``mlx.launch --backend ring -n 2`` over loopback).

Under a launch, ``zoo load`` / ``zoo generate`` load through
:func:`zoo_registry.distributed.sharded_load`, the path tests/test_distributed_launch.py checks
against one process: lazy load, shard, read one tensor at a time, barrier. Here the commands
themselves run: only rank 0 prints, the text equals one process's greedy text, and rank 0's peak
memory while loading is its share plus at most one full checkpoint tensor. (Before the commands took
that path they read the weights layer by layer: on this checkpoint rank 0 peaked at 44.9 MB for a
30.9 MB share; now 33.8 MB.)
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from launch_fixtures import ring_args, run_launch

# big enough that the weights dominate memory: about 61 MB in float32, the largest tensor is one
# layer's stacked experts (8 x 512 x 256 floats = 4.2 MB)
SHAPE = dict(hidden_size=256, intermediate_size=512, moe_intermediate_size=512, num_attention_heads=8,
             num_key_value_heads=4, num_experts=8, moe_topk=2, use_cla=False, num_hidden_layers=4,
             tie_word_embeddings=False)
LARGEST = 8 * 512 * 256 * 4


def zoo_exe() -> str:
    exe = shutil.which("zoo") or str(Path(sys.executable).with_name("zoo"))
    if not os.path.exists(exe):
        pytest.fail("the zoo console script is not installed (pip install . installs it)")
    return exe


def env_for(tmp_path, monkeypatch) -> dict:
    """The same settings for the launched ranks and for the one-process run in this process."""
    settings = {"ZOO_CACHE_DIR": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    return dict(os.environ)


def one_process(argv, capsys) -> str:
    """The real CLI (``zoo_registry.cli.main``) in this process, unsharded; returns its stdout."""
    from zoo_registry.cli.main import main

    capsys.readouterr()
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """hunyuan-tiny's tokenizer with a wider random HunYuan MoE (seeded numpy weights, N(0, 1/fan_in)):
    greedy decoding then runs the whole --max-tokens budget instead of stopping at an end token."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from zoo_hunyuan import tiny
    from zoo_hunyuan.model import build

    folder = tiny.generate(tmp_path_factory.mktemp("cli") / "ckpt", seed=0)
    cfg = {**json.loads((folder / "config.json").read_text()), **SHAPE}
    rng = np.random.default_rng(1)
    weights = {name: mx.array((rng.standard_normal(v.shape) / np.sqrt(v.shape[-1])).astype(np.float32)) if v.ndim >= 2 else v
               for name, v in tree_flatten(build(dict(cfg)).parameters())}
    for old in folder.glob("*.safetensors"):
        old.unlink()
    mx.save_safetensors(str(folder / "model.safetensors"), weights, metadata={"format": "mlx"})
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))
    return folder


def launch(argv, env):
    code, out, err = run_launch([*ring_args(), "--", zoo_exe(), *map(str, argv)], env=env)
    assert "exited with code" not in err, f"a rank failed (mlx.launch exits {code} anyway)\nstdout:\n{out}\nstderr:\n{err}"
    return out, err


def test_zoo_load_with_prompt_on_two_ranks(checkpoint, tmp_path, monkeypatch, capsys):
    env = env_for(tmp_path, monkeypatch)
    argv = ["load", checkpoint, "--json", "--prompt", "Hello there", "--max-tokens", "16"]
    one = json.loads(one_process(argv, capsys))
    out, err = launch(argv, env)
    two = json.loads(out)  # exactly one JSON document: rank 1 printed nothing
    assert one["generation_tokens"] == 16 and two["generation_tokens"] == 16
    assert two["text"] == one["text"] and two["prompt_tokens"] == one["prompt_tokens"]
    # rank 0 holds its share (attention, MLPs and experts halved; embeddings, norms, router whole)...
    assert two["parameter_bytes"] < 0.55 * one["parameter_bytes"], (two["parameter_bytes"], one["parameter_bytes"])
    # ...and read it one tensor at a time: never more than one full checkpoint tensor beside the share
    assert two["peak_memory_bytes"] <= two["parameter_bytes"] + LARGEST, (two["peak_memory_bytes"], two["parameter_bytes"])


def test_zoo_generate_on_two_ranks_prints_one_process_text(tmp_path, monkeypatch, capsys):
    """The README's launch line, a model card and an empty cache: both ranks build the card's
    checkpoint at once (the generator renames its folder into place), rank 0 alone prints."""
    env = env_for(tmp_path, monkeypatch)
    argv = ["generate", "hunyuan-tiny", "--prompt", "Hello", "--max-tokens", "12", "--seed", "0", "--quiet"]
    out, err = launch(argv, env)
    single = one_process(argv, capsys)
    assert single.strip(), "one process generated nothing"
    assert out == single, f"stdout:\n{out}\nstderr:\n{err}"
