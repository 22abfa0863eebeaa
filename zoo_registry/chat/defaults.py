"""Sampling settings: the user's, else the checkpoint's ``generation_config.json``, else zoo's.

A release's ``generation_config.json`` holds the sampling its authors tuned the model for
(Hunyuan-A13B-Instruct: ``do_sample true, temperature 0.7, top_p 0.8, top_k 20,
repetition_penalty 1.05``) and the ids that end a turn (``eos_token_id: [127960, 127967]``).
These apply as transformers applies them (``GenerationConfig``): ``temperature``, ``top_p`` and
``top_k`` only when ``do_sample`` is true (it defaults to false, which is greedy decoding);
``repetition_penalty`` always. When ``do_sample`` is true and the file leaves a sampling key out,
transformers fills it from its global defaults (``GenerationConfig._get_default_generation_params``:
temperature 1.0, top_k 50, top_p 1.0), and so does zoo. Anything the user gives wins, key by key. Every value records where
it came from, so ``zoo generate`` can say it. The sampler and logits processors are mlx-lm's
(``make_sampler``, ``make_logits_processors``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Dict, Optional, Tuple

from ..errors import ConfigError

FILE = "generation_config.json"
ZOO = "zoo default"
SAMPLING_KEYS = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty")
# transformers' global defaults for what a sampling generation_config.json leaves out
_TRANSFORMERS_SAMPLING = {"temperature": 1.0, "top_k": 50, "top_p": 1.0}


@dataclass
class Sampling:
    """Resolved sampling settings; ``sources[key]`` says where each value came from."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    repetition_penalty: Optional[float] = None
    eos_token_ids: Tuple[int, ...] = ()
    sources: Dict[str, str] = field(default_factory=dict)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def sampler(self):
        from mlx_lm.sample_utils import make_sampler

        return make_sampler(temp=self.temperature, top_p=self.top_p, top_k=self.top_k, min_p=self.min_p)

    def logits_processors(self):
        from mlx_lm.sample_utils import make_logits_processors

        return make_logits_processors(repetition_penalty=self.repetition_penalty) if self.repetition_penalty else None

    def as_dict(self) -> dict:
        return {**{k: getattr(self, k) for k in SAMPLING_KEYS}, "greedy": self.greedy,
                "eos_token_ids": list(self.eos_token_ids), "sources": dict(self.sources)}

    def describe(self, token_names=None) -> str:
        """One line: each setting and its source, grouped by source; then the stop ids."""
        shown = [k for k in SAMPLING_KEYS if not (self.greedy and k in ("top_p", "top_k", "min_p"))]
        groups: Dict[str, list] = {}
        for key in shown:
            value = getattr(self, key)
            source = self.sources.get(key, ZOO)
            defaulted = source == ZOO or source.startswith("transformers'")
            if value is None or (defaulted and key != "temperature" and value == _ZOO_DEFAULTS[key]):
                continue  # an unset filter (top_p 1, top_k 0, min_p 0) says nothing
            text = f"{key} {value:g}" if isinstance(value, float) else f"{key} {value}"
            if key == "temperature" and self.greedy:
                text = "greedy (temperature 0)"
            groups.setdefault(source, []).append(text)
        parts = [f"{', '.join(items)} ({source})" for source, items in groups.items()]
        line = "sampling: " + "; ".join(parts)
        if self.eos_token_ids:
            names = [f"{i} {token_names[i]}" if token_names and token_names.get(i) else str(i) for i in self.eos_token_ids]
            source = self.sources.get("eos_token_id", ZOO)
            line += f"; stops at {', '.join(names)} ({'the same file' if source in groups else source})"
        return line



# zoo's own defaults (greedy): the dataclass's, for every key a generation_config.json may leave out
_ZOO_DEFAULTS = {f.name: f.default for f in fields(Sampling) if f.name in SAMPLING_KEYS}

def read_generation_config(folder) -> Tuple[Optional[dict], Optional[Path]]:
    """``(settings, path)`` from ``folder/generation_config.json``, checked; ``(None, None)`` if absent."""
    from ..files import read_json

    if folder is None:
        return None, None
    path = Path(folder) / FILE
    if not path.is_file():
        return None, None
    data = read_json(path, "generation config")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}::$: a generation config must be a JSON object, got {type(data).__name__}")
    checks = {
        "temperature": (lambda v: _number(v) and v >= 0, "a number >= 0"),
        "top_p": (lambda v: _number(v) and 0 < v <= 1, "a number in (0, 1]"),
        "top_k": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "an integer >= 0"),
        "min_p": (lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]"),
        "repetition_penalty": (lambda v: _number(v) and v > 0, "a number > 0"),
        "do_sample": (lambda v: isinstance(v, bool), "true or false"),
        "eos_token_id": (lambda v: _ids(v) is not None, "a token id or a list of token ids"),
    }
    for key, (ok, what) in checks.items():
        if data.get(key) is not None and not ok(data[key]):
            raise ConfigError(f"{path}::$.{key}: must be {what}, got {data[key]!r}",
                              hint=f"fix or delete the key in {FILE}; command-line options override it too")
    return data, path


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _ids(v) -> Optional[Tuple[int, ...]]:
    items = v if isinstance(v, list) else [v]
    if all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in items):
        return tuple(items)
    return None


def resolve(generation_config: Optional[dict] = None, file: Optional[str] = None, origin: str = "command line",
            **overrides) -> Sampling:
    """Merge ``overrides`` (keys of :data:`SAMPLING_KEYS`; ``None`` = not given) over the config."""
    unknown = set(overrides) - set(SAMPLING_KEYS)
    if unknown:
        raise TypeError(f"unknown sampling settings: {', '.join(sorted(unknown))}")
    gc = generation_config or {}
    where = file or FILE
    values, sources = dict(_ZOO_DEFAULTS), {}
    sampling = bool(gc.get("do_sample"))
    for key in SAMPLING_KEYS:
        if overrides.get(key) is not None:
            values[key], sources[key] = overrides[key], origin
        elif key == "temperature" and gc and not sampling and any(k in gc for k in ("temperature", "top_p", "top_k", "do_sample")):
            values[key], sources[key] = 0.0, f"{where}: do_sample is {'false' if 'do_sample' in gc else 'not set'}"
        elif gc.get(key) is not None:
            values[key], sources[key] = gc[key], where
        elif sampling and key in _TRANSFORMERS_SAMPLING:
            values[key], sources[key] = _TRANSFORMERS_SAMPLING[key], f"transformers' default for what {where} leaves out"
        else:
            sources[key] = ZOO
    eos = _ids(gc["eos_token_id"]) if gc.get("eos_token_id") is not None else ()
    if eos:
        sources["eos_token_id"] = where
    return Sampling(float(values["temperature"]), float(values["top_p"]), int(values["top_k"]), float(values["min_p"]),
                    None if values["repetition_penalty"] is None else float(values["repetition_penalty"]), eos, sources)


def for_checkpoint(folder, origin: str = "command line", **overrides) -> Sampling:
    """:func:`resolve` with the folder's ``generation_config.json`` (if it has one)."""
    data, path = read_generation_config(folder)
    return resolve(data, str(path) if path else None, origin=origin, **overrides)
