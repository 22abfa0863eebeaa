"""zoo's HunYuan tokenizer gives exactly the ids of Tencent's tokenizer (tiktoken as the oracle).

Runs on the real ``hy.tiktoken`` of the A13B and Large releases (``../shared/data/hunyuan``) and on
synthetic rank files trained here with tiktoken's own reference trainer.
"""

from __future__ import annotations

import json
import shutil
import unicodedata

import pytest

from tokenizer_oracle import A13B, CORPUS, IDS, LARGE, TENCENT_PAT_STR, Oracle, hunyuan_folder, load_tok, require_shared, shared_cache

A13B_VOCAB = 128167


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    rank_file = require_shared(A13B / "hy.tiktoken")
    declared = json.loads(require_shared(A13B / "tokenizer_config.json").read_text(encoding="utf-8"))
    folder = hunyuan_folder(tmp_path_factory.mktemp("a13b"), rank_file, declared, {"vocab_size": A13B_VOCAB})
    return load_tok(folder), Oracle(rank_file), folder


@pytest.mark.parametrize("name, text", CORPUS, ids=IDS)
def test_real_ids_equal_tencents(real, name, text):
    tok, oracle, _ = real
    assert tok.encode(text) == oracle.encode(text)


def test_real_decode_round_trips(real):
    tok, oracle, folder = real
    for name, text in CORPUS:
        ids = tok.encode(text)
        assert tok.decode(ids) == oracle.decode(ids) == unicodedata.normalize("NFC", text), name
    assert not (folder / "IMPORTED").exists()


def test_real_vocabulary_and_special_ids(real):
    tok, oracle, _ = real
    assert len(tok._tokenizer) == A13B_VOCAB == len(oracle.specials) + 127957
    for token, i in oracle.specials.items():
        assert tok.convert_tokens_to_ids(token) == i
        assert tok.decode([i]) == token
    assert (tok.eos_token, tok.pad_token, tok.bos_token) == ("<|eos|>", "<|pad|>", None)  # A13B's tokenizer_config.json
    assert tok.eos_token_id == 127960


def test_streaming_detokenizer_matches_decode(real):
    tok, _, _ = real
    text = "混元 says: hello 😀 <|extra_0|>\n  done"
    detok = tok.detokenizer
    detok.reset()
    for i in tok.encode(text):
        detok.add_token(i)
    detok.finalize()
    assert detok.text == text


def test_large_release_wraps_text_like_its_tokenizer_class(tmp_path):
    rank_file = require_shared(LARGE / "hy.tiktoken")
    declared = json.loads(require_shared(LARGE / "tokenizer_config.json").read_text(encoding="utf-8"))
    folder = hunyuan_folder(tmp_path, rank_file, declared, {"vocab_size": 129024})  # Large pads its embeddings
    tok, oracle = load_tok(folder), Oracle(rank_file, extras=204)
    text = "Hello <|extra_0|> 世界 <|extra_204|>"  # extra_204 exists only in A13B's tokenizer
    assert tok.encode(text, add_special_tokens=False) == oracle.encode(text)
    assert tok.encode(text) == [127958] + oracle.encode(text) + [127957]  # add_bod_token / add_eod_token default on
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<|startoftext|>", "<|endoftext|>", "<|pad|>")
    assert len(tok._tokenizer) == 127957 + 5 + 204
    assert not (folder / "IMPORTED").exists()


def test_hunyuan_tiktoken_name_written_by_save_vocabulary(tmp_path, real):
    rank_file = require_shared(A13B / "hy.tiktoken")
    folder = hunyuan_folder(tmp_path, rank_file, {"tokenizer_class": "HYTokenizer"})
    (folder / "hy.tiktoken").rename(folder / "hunyuan.tiktoken")
    tok, (_, oracle, _) = load_tok(folder), real
    assert tok.encode("A13B 的 save_vocabulary") == oracle.encode("A13B 的 save_vocabulary")


# -- synthetic rank files --------------------------------------------------------------------------

def trained_ranks(text: str, vocab_size: int) -> dict:
    from tiktoken._educational import bpe_train

    return bpe_train(text, vocab_size, TENCENT_PAT_STR, visualise=None)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from zoo_registry.tokenizer.ranks import write_ranks

    root = tmp_path_factory.mktemp("synthetic")
    training = "\n".join(text for name, text in CORPUS if not name.startswith(("long", "random", "codepoints")))
    rank_file = write_ranks(trained_ranks(training * 2, 700), root / "ranks.tiktoken")
    folder = hunyuan_folder(root / "ckpt", rank_file, {"tokenizer_class": "HYTokenizer", "eos_token": "<|eos|>"})
    return load_tok(folder), Oracle(rank_file)


@pytest.mark.parametrize("name, text", CORPUS, ids=IDS)
def test_synthetic_ids_equal_tiktoken(synthetic, name, text):
    tok, oracle = synthetic
    ids = tok.encode(text)
    assert ids == oracle.encode(text)
    assert tok.decode(ids) == oracle.decode(ids)


def test_tokens_bpe_cannot_reach_are_still_produced_whole(tmp_path):
    """tiktoken returns a piece that is itself a token whole, even when no merge path builds it."""
    from zoo_registry.tokenizer.ranks import write_ranks

    ranks = {bytes([b]): b for b in range(256)}
    ranks.update({b"xyz": 256, b"ab": 257, b"abc": 258, b"bc": 259, b"abcd": 260, b" xyz": 261})
    rank_file = write_ranks(ranks, tmp_path / "r.tiktoken")
    tok = load_tok(hunyuan_folder(tmp_path / "ckpt", rank_file, {"tokenizer_class": "HYTokenizer"}))
    oracle = Oracle(rank_file)
    for text in ("xyz", "xyzxyz", " xyz", "abcd abc bcd ab xyzabc", "abcabcd"):
        assert tok.encode(text) == oracle.encode(text), text


def test_conversion_is_cached_per_rank_file_and_recipe(tmp_path, monkeypatch):
    from zoo_registry.tokenizer.cache import cached_tokenizer_file
    from zoo_registry.tokenizer.ranks import write_ranks
    from zoo_hunyuan.tokenizer import recipe

    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    ranks = {bytes([b]): b for b in range(256)}
    folder = tmp_path / "ckpt"
    folder.mkdir()
    write_ranks(ranks, folder / "hy.tiktoken")
    r = recipe(folder, {})
    first, built = cached_tokenizer_file(r)
    assert built and first.is_file() and first.is_relative_to(tmp_path / "cache" / "tokenizers")
    assert cached_tokenizer_file(r) == (first, False)
    from dataclasses import replace

    other, built = cached_tokenizer_file(replace(r, pattern=r"\s+|\S+"))
    assert built and other != first
    ranks[b"ab"] = 256
    write_ranks(ranks, folder / "hy.tiktoken")
    changed, built = cached_tokenizer_file(recipe(folder, {}))
    assert built and changed not in (first, other)


@pytest.mark.parametrize("line, problem", [
    (b"!!! 3\n", "is not 'base64-token rank'"),
    (b"YQ== 0\n", "token b'a' already has rank 97"),
    (b"YWI= 97\n", "rank 97 is already used on line 98"),
    (b"YWI=\n", "expected 'base64-token rank'"),
])
def test_bad_rank_file_names_the_line(tmp_path, line, problem):
    from zoo_registry.errors import CheckpointError
    from zoo_registry.tokenizer.ranks import write_ranks

    folder = tmp_path / "ckpt"
    folder.mkdir()
    write_ranks({bytes([b]): b for b in range(256)}, folder / "hy.tiktoken")
    with open(folder / "hy.tiktoken", "ab") as f:
        f.write(line)
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "HYTokenizer"}))
    with pytest.raises(CheckpointError) as e:
        load_tok(folder)
    assert str(e.value).startswith(f"{folder / 'hy.tiktoken'}:257: ") and problem in str(e.value)


def test_folder_without_rank_file_falls_back_and_is_refused_without_running_code(tmp_path):
    from zoo_registry.errors import UnsafeInputError

    shutil.rmtree(tmp_path, ignore_errors=True)
    folder = tmp_path / "ckpt"
    folder.mkdir(parents=True)
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "HYTokenizer", "auto_map": {"AutoTokenizer": ["tokenization_hy.HYTokenizer", None]}}))
    from tokenizer_oracle import plant_tokenization_hy

    plant_tokenization_hy(folder)
    with shared_cache(), pytest.raises(UnsafeInputError, match="needs the checkpoint's own Python code"):
        load_tok(folder)
    assert not (folder / "IMPORTED").exists()


def test_another_tiktoken_family_plugs_in_the_same_way(tmp_path):
    """The example plugin registers Qwen (v1)'s QWenTokenizer: specials <|endoftext|>, <|im_start|>,
    <|im_end|>, <|extra_0..204|> after the ranks (tokenization_qwen.py, huggingface.co/Qwen/Qwen-7B)."""
    import tiktoken

    from zoo_registry.tokenizer.ranks import write_ranks

    from tokenizer_oracle import oracle_ranks

    folder = tmp_path / "qwen"
    folder.mkdir()
    ranks = {bytes([b]): b for b in range(256)}
    ranks.update({b"Qw": 256, b"Qwen": 257, b" Qwen": 258, b"en": 259})
    write_ranks(ranks, folder / "qwen.tiktoken")
    (folder / "tokenizer_config.json").write_text(json.dumps({"auto_map": {"AutoTokenizer": ["tokenization_qwen.QWenTokenizer", None]}}))
    tok = load_tok(folder)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + [f"<|extra_{i}|>" for i in range(205)]
    ref = tiktoken.Encoding("qwen", pat_str=TENCENT_PAT_STR, mergeable_ranks=oracle_ranks(folder / "qwen.tiktoken"),
                            special_tokens={s: len(ranks) + i for i, s in enumerate(specials)})
    text = "<|im_start|>user\nQwen 123 Qwen<|im_end|><|extra_204|>"
    assert tok.encode(text) == ref.encode(text, allowed_special="all")
    assert tok.eos_token == "<|endoftext|>"
