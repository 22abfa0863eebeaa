"""A folder that declares HYTokenizer (auto_map) but ships a tokenizer.json instead of hy.tiktoken.

Hunyuan-7B-Instruct's later revisions ship a tokenizer.json while tokenizer_config.json still
carries the auto_map to ``tokenization_hy.HYTokenizer``; transformers refuses such a folder
without ``trust_remote_code`` before it looks at tokenizer.json. zoo loads the tokenizer.json and
never imports the folder's code.
"""

import json
import warnings

import pytest

from zoo_registry.errors import UnsafeInputError, ZooWarning
from zoo_registry.loading import load_tokenizer


@pytest.fixture
def folder(tmp_path, isolated_home):
    from zoo_hunyuan import tiny

    src = tiny.generate(tmp_path / "tiny", seed=0)
    out = tmp_path / "hy-json"
    out.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (out / name).write_bytes((src / name).read_bytes())
    config = json.loads((out / "tokenizer_config.json").read_text())
    config.update(tokenizer_class="HYTokenizer", auto_map={"AutoTokenizer": ["tokenization_hy.HYTokenizer", None]})
    (out / "tokenizer_config.json").write_text(json.dumps(config))
    (out / "tokenization_hy.py").write_text("raise RuntimeError('zoo imported the checkpoint code')\n")
    return out


def test_tokenizer_json_beside_a_hytokenizer_auto_map_loads_without_the_code(folder):
    from tokenizers import Tokenizer

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tok = load_tokenizer(folder)
    assert any(issubclass(w.category, ZooWarning) and "tokenizer.json was loaded" in str(w.message) for w in caught)
    reference = Tokenizer.from_file(str(folder / "tokenizer.json"))
    for text in ("Hello world", "  two  spaces\nand 1234 digits", "<|eos|> inside"):
        assert tok.encode(text, add_special_tokens=False) == reference.encode(text, add_special_tokens=False).ids
    ids = tok.encode("The model says hello.", add_special_tokens=False)
    detok = tok.detokenizer
    detok.reset()
    for i in ids:
        detok.add_token(i)
    detok.finalize()
    assert detok.text == tok.decode(ids)


def test_without_tokenizer_json_it_is_still_refused(folder):
    (folder / "tokenizer.json").unlink()
    with pytest.raises(UnsafeInputError, match="auto_map"):
        load_tokenizer(folder)
