"""The checkpoint as GGUF (f32, bf16, q8_0, q4_0) with llama.cpp's own converter, and as zoo/mlx-lm folders.

``convert_hf_to_gguf.py`` of the pinned tree runs with that tree's own ``gguf-py``: the ``gguf``
package on PyPI carries the same version number (0.19.0) but lacks ``MODEL_ARCH.DFLASH``, which the
converter's modules reference at import, so it cannot run this converter (``pip install gguf`` still
brings gguf-py's dependencies: numpy, pyyaml, tqdm; the converter also imports torch and
transformers, which the ``parity`` extra installs). It maps
``HunYuanMoEV1ForCausalLM`` to ``hunyuan-moe`` and merges the per-expert tensors itself; only its
vocabulary step is replaced, at run time: upstream ``HunYuanMoEModel.set_vocab`` reads Tencent's
tiktoken tokenizer through ``trust_remote_code`` (``tokenizer.mergeable_ranks``) and forces BOS id
127959, which a 32000-token checkpoint cannot have. The checkpoint's byte-level BPE
``tokenizer.json`` takes the converter's generic GPT-2 BPE path (``_set_vocab_gpt2``) instead,
with the pre-tokenizer name pinned to ``gpt-2`` (the regex it was trained with; the converter's
hash table cannot know a private tokenizer). Hyper-parameters, RoPE, tensor names and expert
merging are upstream's. q8_0 and q4_0 are ``llama-quantize``'s default mixes from the f32 file
(q4_0 keeps the tied ``token_embd`` at q6_K).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

RUNNER = r"""
import sys
tree = sys.argv[1]
sys.path.insert(0, tree)
sys.argv = ["convert_hf_to_gguf.py"] + sys.argv[2:]
import convert_hf_to_gguf
from conversion.hunyuan import HunYuanMoEModel

def set_vocab(self):
    self.get_vocab_base_pre = lambda tokenizer: "gpt-2"
    self._set_vocab_gpt2()

HunYuanMoEModel.set_vocab = set_vocab
convert_hf_to_gguf.main()
"""

GGUF_TYPES = ("f32", "bf16", "q8_0", "q4_0")


def gguf_files(tree: Path, quantize: Path, ckpt: Path, out: Path) -> dict:
    """``{type: path}`` for :data:`GGUF_TYPES`, each made once."""
    out.mkdir(parents=True, exist_ok=True)
    files = {t: out / f"a13b-small-{t}.gguf" for t in GGUF_TYPES}
    env = dict(os.environ)
    env.pop("NO_LOCAL_GGUF", None)
    for kind in ("f32", "bf16"):
        if not files[kind].is_file():
            subprocess.run(["nice", "-n", "10", sys.executable, "-c", RUNNER, str(tree), str(ckpt), "--outtype", kind,
                            "--outfile", str(files[kind])], check=True, env=env)
    for kind in ("q8_0", "q4_0"):
        if not files[kind].is_file():
            subprocess.run(["nice", "-n", "10", str(quantize), str(files["f32"]), str(files[kind]), kind], check=True,
                           stdout=subprocess.DEVNULL)
    return files


def zoo_folders(ckpt: Path, out: Path) -> dict:
    """zoo's MLX affine 8- and 4-bit folders (group 64, router unquantized) via ``zoo convert``."""
    return _quantized(out, "zoo", lambda folder, bits: ["zoo_registry.cli.main", "convert", str(ckpt), str(folder),
                                                         "--quantize", str(bits)])


def mlx_lm_folders(ckpt: Path, out: Path) -> dict:
    """mlx-lm's own 8- and 4-bit conversions (``mlx_lm convert -q --q-bits N``, group 64)."""
    return _quantized(out, "mlx-lm", lambda folder, bits: ["mlx_lm", "convert", "--hf-path", str(ckpt), "--mlx-path", str(folder),
                                                            "-q", "--q-bits", str(bits)])


def _quantized(out: Path, prefix: str, module_args) -> dict:
    """``{"q8": folder, "q4": folder}``: ``python -m <module_args(folder, bits)>`` run for each folder not made yet."""
    folders = {}
    for bits in (8, 4):
        folder = out / f"{prefix}-q{bits}"
        if not (folder / "config.json").is_file():
            subprocess.run(["nice", "-n", "10", sys.executable, "-m", *module_args(folder, bits)], check=True)
        folders[f"q{bits}"] = folder
    return folders
