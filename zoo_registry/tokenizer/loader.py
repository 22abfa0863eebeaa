"""A checkpoint folder → an mlx-lm ``TokenizerWrapper``, never running code shipped in the folder.

Two paths:

- **Declared class with a registered builder.** ``tokenizer_config.json`` names a tokenizer
  class (``tokenizer_class``, or the class of ``auto_map.AutoTokenizer``) that a plugin registered
  with ``register_tokenizers``. The builder reads the folder as data and returns a
  :class:`~.recipe.TiktokenRecipe` (or ``None`` when the folder lacks its data file); zoo converts
  it once (:mod:`.cache`), wraps it in transformers' ``PreTrainedTokenizerFast`` (chat template,
  bos/eos/pad from the folder's configs) and mlx-lm's ``TokenizerWrapper``. The folder's Python
  files are never imported and no warning about remote code is given: none is needed.
- **Everything else** goes to mlx-lm's loader with ``trust_remote_code=False`` (transformers would
  otherwise ask on the terminal and, on "y", import the folder's Python). A tokenizer
  ``auto_map`` is ignored with a :class:`ZooWarning` when transformers' own classes can load the
  tokenizer, and refused with :class:`UnsafeInputError` when they cannot.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Optional, Tuple

from ..errors import CheckpointError, ConfigError, PluginError, UnsafeInputError, ZooError, ZooWarning
from ..files import read_json
from .recipe import TiktokenRecipe

SPECIAL_KEYS = ("bos_token", "eos_token", "pad_token", "unk_token")


def read_tokenizer_config(folder: Path) -> Tuple[Optional[str], dict]:
    """``(file, contents)`` of the folder's tokenizer_config.json, or ``(None, {})``."""
    file = folder / "tokenizer_config.json"
    if not file.is_file():
        return None, {}
    data = read_json(file, "tokenizer config")
    if not isinstance(data, dict):
        raise ConfigError(f"{file}::$: a tokenizer config must be a JSON object, got {type(data).__name__}")
    return str(file), data


def auto_map_ref(declared: dict) -> Any:
    """The ``auto_map.AutoTokenizer`` entry (a ``"module.Class"`` string or a [slow, fast] list)."""
    auto_map = declared.get("auto_map")
    return auto_map.get("AutoTokenizer") if isinstance(auto_map, dict) else auto_map


def declared_classes(declared: dict) -> list:
    """Tokenizer class names the config declares: ``tokenizer_class``, then the auto_map classes."""
    names = []
    if isinstance(declared.get("tokenizer_class"), str):
        names.append(declared["tokenizer_class"])
    ref = auto_map_ref(declared)
    for entry in ref if isinstance(ref, (list, tuple)) else [ref]:
        if isinstance(entry, str) and entry:
            names.append(entry.rsplit("--", 1)[-1].rsplit(".", 1)[-1])  # "repo--module.Class" -> "Class"
    return list(dict.fromkeys(names))


def find_recipe(folder: Path, declared: dict, registry) -> Optional[TiktokenRecipe]:
    """Ask the builder registered for the first declared class it serves; ``None`` if none applies."""
    for name in declared_classes(declared):
        entry = registry.tokenizers.get(name)
        if entry is None:
            continue
        where = f"plugin {entry.provider!r}: tokenizer builder {entry.target} for {name}"
        try:
            builder = entry.load()
        except PluginError as e:
            raise PluginError(f"plugin {entry.provider!r}: tokenizer {name!r}: {e}", hint=e.hint) from None
        try:
            recipe = builder(folder, dict(declared))
        except ZooError:
            raise
        except Exception as e:  # noqa: BLE001 - plugin code may raise anything
            raise PluginError(f"{where} crashed on {folder}: {type(e).__name__}: {e}",
                              hint=f"this is a bug in the plugin {entry.provider!r}") from e
        if recipe is None:
            continue
        if not isinstance(recipe, TiktokenRecipe):
            raise PluginError(f"{where} returned {type(recipe).__name__}, not a zoo_registry.tokenizer.TiktokenRecipe")
        return recipe.check(where)
    return None


def _special(value) -> Optional[str]:
    if isinstance(value, dict):  # AddedToken serialised by transformers
        value = value.get("content")
    return value if isinstance(value, str) else None


def chat_template(folder: Path, declared: dict):
    """The chat template: ``tokenizer_config.json``'s, else ``chat_template.jinja``, else ``chat_template.json``."""
    template = declared.get("chat_template")
    if isinstance(template, list):  # named templates, as transformers saves them
        template = {t["name"]: t["template"] for t in template if isinstance(t, dict) and "name" in t and "template" in t}
    if template:
        return template
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    as_json = folder / "chat_template.json"
    if as_json.is_file():
        data = read_json(as_json, "chat template")
        return data.get("chat_template") if isinstance(data, dict) else None
    return None


def from_recipe(folder: Path, recipe: TiktokenRecipe, declared: dict, extra: Optional[dict] = None):
    """transformers' ``PreTrainedTokenizerFast`` for ``recipe``, configured from ``declared``."""
    from transformers import PreTrainedTokenizerFast

    from .cache import cached_tokenizer_file

    path, _ = cached_tokenizer_file(recipe)
    specials = {k: getattr(recipe, k) for k in SPECIAL_KEYS}
    mapping = folder / "special_tokens_map.json"
    if mapping.is_file():
        data = read_json(mapping, "special tokens map")
        specials.update({k: _special(data.get(k)) for k in SPECIAL_KEYS if _special(data.get(k))})
    specials.update({k: _special(declared.get(k)) for k in SPECIAL_KEYS if _special(declared.get(k))})
    kwargs = {k: v for k, v in specials.items() if v is not None}
    unknown = [f"{k}={v!r}" for k, v in kwargs.items() if v not in recipe.special_tokens]
    if unknown:
        raise ConfigError(f"{folder / 'tokenizer_config.json'}: {', '.join(unknown)} is not one of the tokenizer's special tokens",
                          hint="use one of " + ", ".join(recipe.special_tokens[:6]) + ", ...")
    if isinstance(declared.get("model_max_length"), int):
        kwargs["model_max_length"] = declared["model_max_length"]
    template = chat_template(folder, declared)
    if template:
        kwargs["chat_template"] = template
    kwargs.update(extra or {})
    kwargs.pop("trust_remote_code", None)
    try:
        return PreTrainedTokenizerFast(tokenizer_file=str(path), clean_up_tokenization_spaces=False, **kwargs)
    except Exception as e:  # noqa: BLE001 - transformers raises many types
        raise CheckpointError(f"{folder}: cannot build the tokenizer from {recipe.rank_file.name}: {type(e).__name__}: {e}") from None


def load_tokenizer(folder: Path, tokenizer_config: Optional[dict] = None, eos=None, registry=None):
    """mlx-lm's tokenizer for ``folder``, never running code shipped in the folder (see the module doc).

    ``tokenizer_config`` holds extra keyword arguments for the tokenizer (``trust_remote_code``
    may not be turned on); ``eos`` is an id or list of ids that end generation.
    """
    folder = Path(folder)
    if registry is None:  # the public boundary: the process-wide registry (plugins' tokenizers) by default
        from ..registry import get_registry

        registry = get_registry()
    extra = dict(tokenizer_config or {})
    if extra.get("trust_remote_code"):
        raise UnsafeInputError(
            "tokenizer_config={'trust_remote_code': True}: zoo never runs code shipped with a checkpoint",
            hint="drop trust_remote_code; use a tokenizer that transformers can load without custom code",
        )
    extra["trust_remote_code"] = False
    file, declared = read_tokenizer_config(folder)
    if declared:
        recipe = find_recipe(folder, declared, registry)
        if recipe is not None:
            from mlx_lm.tokenizer_utils import BPEStreamingDetokenizer, TokenizerWrapper

            tokenizer = from_recipe(folder, recipe, declared, extra)
            return TokenizerWrapper(tokenizer, BPEStreamingDetokenizer, eos_token_ids=[eos] if isinstance(eos, int) else eos)
    return _load_with_mlx_lm(folder, extra, eos, file, auto_map_ref(declared))


def _load_with_mlx_lm(folder: Path, extra: dict, eos, file, auto_map):
    from mlx_lm.utils import load_tokenizer as mlx_load_tokenizer

    try:
        tokenizer = mlx_load_tokenizer(folder, extra, eos_token_ids=eos)
    except ZooError:
        raise
    except Exception as e:  # noqa: BLE001 - transformers/tokenizers raise many types for a bad tokenizer
        if auto_map and ("custom code" in str(e) or "trust_remote_code" in str(e)):
            if (folder / "tokenizer.json").is_file():  # e.g. Hunyuan-7B-Instruct: HYTokenizer's auto_map beside a tokenizer.json
                return _from_tokenizer_json(folder, extra, eos, file, auto_map)
            raise UnsafeInputError(
                f"{file}::$.auto_map: the tokenizer needs the checkpoint's own Python code ({_short_ref(auto_map)}), which zoo never runs",
                hint="install a zoo plugin that registers this tokenizer class (`zoo plugins`), convert the tokenizer to "
                "tokenizer.json on a machine you trust (AutoTokenizer.from_pretrained(dir, trust_remote_code=True)"
                ".save_pretrained(out)), or use a checkpoint that ships one",
            ) from None
        raise CheckpointError(f"{folder}: cannot load the tokenizer: {type(e).__name__}: {e}",
                              hint="the folder needs a tokenizer.json (or tokenizer.model) and tokenizer_config.json") from None
    if auto_map:
        warnings.warn(f"{file}::$.auto_map: ignored; zoo never runs the checkpoint's tokenizer code ({_short_ref(auto_map)}), "
                      "so transformers' built-in tokenizer classes were used", ZooWarning, stacklevel=4)
    return tokenizer


def _from_tokenizer_json(folder: Path, extra: dict, eos, file, auto_map):
    """The folder's ``tokenizer.json`` through transformers' ``PreTrainedTokenizerFast``, the
    ``auto_map`` ignored (transformers refuses the folder before it looks at tokenizer.json)."""
    from mlx_lm.tokenizer_utils import BPEStreamingDetokenizer, NaiveStreamingDetokenizer, TokenizerWrapper
    from transformers import PreTrainedTokenizerFast

    try:
        tokenizer = PreTrainedTokenizerFast.from_pretrained(str(folder), **extra)
    except Exception as e:  # noqa: BLE001 - transformers raises many types
        raise CheckpointError(f"{folder / 'tokenizer.json'}: cannot load the tokenizer: {type(e).__name__}: {e}") from None
    decoder = (read_json(folder / "tokenizer.json", "tokenizer").get("decoder") or {})
    parts = decoder.get("decoders", [decoder]) if isinstance(decoder, dict) else []
    byte_level = any(isinstance(d, dict) and d.get("type") == "ByteLevel" for d in parts)
    warnings.warn(f"{file}::$.auto_map: ignored; zoo never runs the checkpoint's tokenizer code ({_short_ref(auto_map)}), "
                  "so the folder's tokenizer.json was loaded with transformers' PreTrainedTokenizerFast", ZooWarning, stacklevel=5)
    return TokenizerWrapper(tokenizer, BPEStreamingDetokenizer if byte_level else NaiveStreamingDetokenizer,
                            eos_token_ids=[eos] if isinstance(eos, int) else eos)


def _short_ref(auto_map) -> str:
    if isinstance(auto_map, (list, tuple)):
        auto_map = next((a for a in auto_map if a), None)
    return str(auto_map)
