"""Tencent's tokenizer, rebuilt with its own library (tiktoken) as the oracle for zoo's tokenizer.

The oracle takes its facts from Tencent's ``tokenization_hy.py`` (github.com/Tencent-Hunyuan/
Hunyuan-A13B and github.com/Tencent/Tencent-Hunyuan-Large, ``models/``), written out here
independently of ``zoo_hunyuan.tokenizer``: NFC first, ``PAT_STR`` with single digits, specials
from the rank count (127957) in the order endoftext, startoftext, bos, eos, pad, extra_0...,
``allowed_special="all"``. Ranks are read with ``base64`` here, not with zoo's reader.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import os
import random
import shutil
import tempfile
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ZOO_HUNYUAN_DATA") or ROOT.parent / "shared" / "data" / "hunyuan")  # override for worktrees elsewhere
A13B, LARGE = SHARED / "a13b", SHARED / "large"

TENCENT_PAT_STR = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
TENCENT_SPECIALS = ["<|endoftext|>", "<|startoftext|>", "<|bos|>", "<|eos|>", "<|pad|>"]


def require_shared(path: Path) -> Path:
    """The real release file at ``path``: fail when ``CI`` is set and it is missing, skip otherwise."""
    if not path.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing; CI must provide ../shared/data/hunyuan (Tencent's release files)")
        pytest.skip(f"{path} not available (Tencent's release files live in ../shared/data/hunyuan)")
    return path


def oracle_ranks(path: Path) -> dict:
    ranks = {}
    for line in path.read_bytes().splitlines():
        if line.strip():
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


class Oracle:
    """``tiktoken.Encoding`` configured as Tencent's HYTokenizer configures it."""

    def __init__(self, rank_file: Path, extras: int = 205):
        import tiktoken

        ranks = oracle_ranks(rank_file)
        start = len(ranks)
        self.specials = {tok: start + i for i, tok in enumerate(TENCENT_SPECIALS + [f"<|extra_{i}|>" for i in range(extras)])}
        self.enc = tiktoken.Encoding("HunYuan", pat_str=TENCENT_PAT_STR, mergeable_ranks=ranks, special_tokens=self.specials)

    def encode(self, text: str) -> list:
        return self.enc.encode(unicodedata.normalize("NFC", text), allowed_special="all")

    def decode(self, ids) -> str:
        return self.enc.decode(ids, errors="replace")


_CACHE = Path(tempfile.mkdtemp(prefix="zoo-test-tokenizers-"))  # one per test process: the 128K conversion is paid once
atexit.register(shutil.rmtree, _CACHE, True)


@contextlib.contextmanager
def shared_cache():
    old = os.environ.get("ZOO_CACHE_DIR")
    os.environ["ZOO_CACHE_DIR"] = str(_CACHE)
    try:
        yield _CACHE
    finally:
        if old is None:
            os.environ.pop("ZOO_CACHE_DIR", None)
        else:
            os.environ["ZOO_CACHE_DIR"] = old


def hunyuan_folder(folder: Path, rank_file: Path, tokenizer_config: dict, config: dict | None = None) -> Path:
    """A folder holding what a HunYuan release ships for its tokenizer (and a booby-trapped code file)."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(rank_file, folder / "hy.tiktoken")
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, ensure_ascii=False))
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    plant_tokenization_hy(folder)
    return folder


def plant_tokenization_hy(folder: Path) -> None:
    """A ``tokenization_hy.py`` that leaves a marker file and raises if anything imports it."""
    (folder / "tokenization_hy.py").write_text(
        "import pathlib\npathlib.Path(__file__).with_name('IMPORTED').write_text('imported')\n"
        "raise RuntimeError('zoo imported the checkpoint tokenizer code')\n"
    )


def load_tok(folder: Path):
    from zoo_registry.loading import load_tokenizer

    with shared_cache():
        return load_tokenizer(folder)


# -- the corpus ------------------------------------------------------------------------------------

WHITESPACE = [" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\n\n\n", "\r\n", "\r\n\r\n", "\r", " \n", "\n ", " \n ", "\t\n",
              "\u00a0", "\u2002", "\u2003", "\u2009", "\u200b", "\u3000", "\u2028", "\u2029", "\u0085", "\x0b", "\x0c", "\u1680", "\u202f"]


def corpus() -> list:
    """``(name, text)`` pairs covering what the issue lists; deterministic."""
    cases = [
        ("empty", ""),
        ("english", "The quick brown fox jumps over the lazy dog. It's 5 o'clock; we've been waiting, haven't we?"),
        ("contractions_upper", "I'M SURE IT'S FINE. WE'LL SEE. THEY'RE HERE. YOU'VE GOT IT. HE'D KNOW. DON'T! It'S Mixed 'Ll 'D"),
        ("chinese", "混元大模型是腾讯开发的大语言模型，支持中文和英文。今天天气很好！"),
        ("japanese", "こんにちは、世界。東京は日本の首都です。カタカナとひらがな。"),
        ("korean", "안녕하세요, 세계! 한국어 텍스트를 토큰화합니다."),
        ("arabic", "مرحبا بالعالم! هذه جملة عربية مع أرقام ١٢٣٤٥."),
        ("cyrillic_greek_hindi_thai", "Привет, мир! Γειά σου κόσμε. नमस्ते दुनिया। สวัสดีชาวโลก"),
        ("emoji", "Hi 😀👍🏽! Family: 👨‍👩‍👧‍👦, flags 🇨🇳🇺🇸, keycap 1️⃣, ❤️‍🔥 and 🫠."),
        ("code", 'def f(x: int) -> dict:\n    """Doc."""\n    return {"a": [1, 2.5e-3], \'b\': x ** 2}\n\n\nclass A:\n\tpass\r\n'),
        ("json_html", '{"key": "value", "n": null}\n<div class="x">&nbsp;</div>'),
        ("digits", "1234567890" * 12 + " 3.14159 -42 1,000,000 ３４５ ٠١٢٣ ⅷ ²³"),
        ("nfc", "Cafe\u0301 re\u0301sume\u0301 \u1100\u1161\u11a8 A\u030a \u212b \ufb01"),
        ("specials_in_text", "user says <|eos|> and <|extra_0|><|extra_4|> then <|startoftext|>x<|pad|> <|endoftext|>"),
        ("special_lookalikes", "<|eos <|EOS|> <|extra_999|> < |eos| > <|bos|><|bos|> <think></think> <answer>"),
        ("punctuation", "!!! ??? ... --- ___ *** ### @@@ ((( ))) 「」『』【】…—“”‘’"),
    ]
    for i, ws in enumerate(WHITESPACE):
        cases.append((f"ws{i}", f"a{ws}b{ws}{ws}c{ws}"))
        cases.append((f"ws{i}_lead_trail", f"{ws}{ws}word{ws}"))
    cases.append(("ws_runs", "x" + "".join(ws * 3 for ws in WHITESPACE) + "y   \n\n  \t z    "))
    rng = random.Random(1234)
    alphabet = "".join(text for _, text in cases) + "".join(WHITESPACE)
    for i in range(40):
        cases.append((f"random{i}", "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 80)))))
    for i in range(20):  # arbitrary code points (no surrogates)
        chars = [chr(rng.choice([rng.randint(0x20, 0x7E), rng.randint(0xA0, 0x2FFF), rng.randint(0x3000, 0xD7FF),
                                 rng.randint(0xE000, 0xFFFD), rng.randint(0x10000, 0x1FAFF)])) for _ in range(rng.randint(1, 40))]
        cases.append((f"codepoints{i}", "".join(chars)))
    body = "\n".join(text for _, text in cases)
    cases.append(("long_mixed", (body + "\n") * 4))
    cases.append(("long_run", "a" * 5000 + "1" * 3000 + " " * 2000 + "中" * 2000))
    return cases


CORPUS = corpus()
IDS = [name for name, _ in CORPUS]
