"""The output head of a model whose config has ``tie_word_embeddings``: never dropped, never left random.

Two checkpoint facts the config's tie flag can contradict, both found before anything is loaded:

- A config that says ``tie_word_embeddings: true`` builds a model whose output head is
  ``embed_tokens``; the plugin's rules then drop a saved ``lm_head.weight`` as a redundant copy
  (mlx-lm does the same, PR #440). That is only right when the saved head *is* a copy. When it
  differs, the tie flag is wrong (a fine-tune that untied the head; a config edited by hand), and
  dropping it would silently give a different model. :func:`untie_if_head_differs` compares the
  two tensors (every MLX-quantization part too); if they differ, the config is switched to untied
  (the raw config too, so ``zoo convert`` writes ``"tie_word_embeddings": false`` next to the
  head), the head is loaded, and zoo warns, naming where the flag came from and the fix.
- A config that omits the flag reads as untied when that is the architecture's default (HunYuan:
  Tencent's ``HunYuanConfig`` defaults to untied). A checkpoint saved under zoo's old tied default
  has no ``lm_head.weight``; Tencent's own code would load it with a randomly initialised head, so
  zoo refuses (:func:`refuse_missing_head`) and says to state ``"tie_word_embeddings": true``. It
  does not tie silently: whether the head was tied is a fact about the weights the files do not
  record, and a guess would be as wrong as Tencent's random head when it misses.

Opt-in by data, with no hook: it applies only to an architecture whose normalised config has the
key ``tie_word_embeddings`` and whose checkpoint names its embeddings ``model.embed_tokens``
(the Hugging Face names; ``lm_head`` for the head). The cost: a tied config whose checkpoint also
saved ``lm_head.weight`` reads both matrices once more (``vocab x hidden`` each) to compare them.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

from .errors import WeightsMismatchError, ZooWarning

#: Key under which an architecture's ``normalize`` may leave notes for the load report (a list of
#: strings, e.g. which defaults it took for keys the config omits); the report shows them first.
CONFIG_NOTES = "_zoo_notes"
KEY = "tie_word_embeddings"
HEAD = "lm_head"
EMBED = "model.embed_tokens"
PARTS = ("weight", "scales", "biases")  # MLX-quantized tensors travel as three parts


def head_differs(tensors: dict, head: str = HEAD, embed: str = EMBED) -> Optional[str]:
    """Why ``head`` is not a copy of ``embed`` in ``tensors`` (lazy MLX arrays), or ``None`` if it is one."""
    import mlx.core as mx

    for part in PARTS:
        h, e = tensors.get(f"{head}.{part}"), tensors.get(f"{embed}.{part}")
        if h is None and e is None:
            continue
        if h is None or e is None:
            return f"{head}.{part} is {'absent' if h is None else 'present'} but {embed}.{part} is {'absent' if e is None else 'present'}"
        if tuple(h.shape) != tuple(e.shape) or h.dtype != e.dtype:
            return f"{head}.{part} is {h.dtype}{list(h.shape)} but {embed}.{part} is {e.dtype}{list(e.shape)}"
        if not mx.array_equal(h, e).item():
            return f"{head}.{part} holds other values than {embed}.{part}"
    return None


def applies(ckpt, normalised: dict) -> bool:
    """Whether the architecture opted in: its normalised config has the tie flag, its checkpoint ``model.embed_tokens``."""
    return KEY in normalised and f"{EMBED}.weight" in ckpt.specs()


def _origin(path: Path, config: dict) -> str:
    """Where the config's tie flag came from: the checkpoint's config.json, or an override of it."""
    from .files import read_json

    try:
        in_file = read_json(path / "config.json", "config").get(KEY)
    except Exception:  # noqa: BLE001 - only for wording a message
        in_file = None
    if in_file is not None and in_file == config.get(KEY):
        return f"{path / 'config.json'}::$.{KEY}"
    return f"{path / 'config.json'}: the override {KEY}={config.get(KEY)!r} (a card's config_overrides or the caller's)"


def untie_if_head_differs(ckpt, config: dict, normalised: Optional[dict] = None, notes_key: str = CONFIG_NOTES) -> bool:
    """Switch the config to untied if ``ckpt`` has a real head; ``True`` when it did.

    ``normalised`` (modified in place) is what the model is built from; ``config`` (the raw config,
    also modified) is what ``zoo convert`` writes. Called with one dict, both are that dict. A note
    is added under ``notes_key`` for the load report and a :class:`ZooWarning` says what was wrong.
    """
    normalised = config if normalised is None else normalised
    if not normalised.get(KEY) or f"{HEAD}.weight" not in ckpt.specs():
        return False
    why = head_differs(ckpt.tensors([f"{name}.{part}" for name in (HEAD, EMBED) for part in PARTS]))
    if why is None:
        return False
    origin = _origin(Path(ckpt.path), config)
    normalised[KEY] = config[KEY] = False
    message = (f"{origin}: the config says the head is tied, but the checkpoint's "
               f"{HEAD}.weight is not a copy of {EMBED}.weight ({why}); loaded it as an untied head")
    normalised[notes_key] = [*normalised.get(notes_key, ()), message]
    warnings.warn(message + f". Fix: set \"{KEY}\": false where the config says true", ZooWarning, stacklevel=3)
    return True


def note_unchecked_head(ckpt, config: dict, notes_key: str = CONFIG_NOTES) -> None:
    """For a headers-only plan: say that a saved head of a tied config is compared on load, not now."""
    if config.get(KEY) and f"{HEAD}.weight" in ckpt.specs():
        note = (f"{HEAD}.weight is in the checkpoint although the config says tied: loading drops it only if it "
                f"equals {EMBED}.weight, else loads it untied (this plan reads no tensor data)")
        config[notes_key] = [*config.get(notes_key, ()), note]


def _defaulted_untied(config: dict, normalised: dict) -> bool:
    return KEY not in config and normalised.get(KEY) is False


def before_build(ckpt, config: dict, normalised: dict, *, plan: bool = False) -> None:
    """What :mod:`.loading` runs before building a plugin model (``plan``: headers only, notes instead)."""
    if not applies(ckpt, normalised):
        return
    if not plan:
        untie_if_head_differs(ckpt, config, normalised)
        return
    note_unchecked_head(ckpt, normalised)
    if _defaulted_untied(config, normalised) and f"{HEAD}.weight" not in ckpt.specs():
        normalised[CONFIG_NOTES] = [*normalised.get(CONFIG_NOTES, ()), f"the checkpoint has no {HEAD}.weight and the config "
                                    f"omits {KEY}, whose default is untied: loading refuses it; {_set_true_hint(ckpt.path)}"]


def _set_true_hint(path) -> str:
    return f"set \"{KEY}\": true in {Path(path) / 'config.json'} if the head is tied to the embeddings (the checkpoint was saved tied)"


def refuse_missing_head(report, config: dict, normalised: dict, path, strict: bool) -> None:
    """Raise when the load report misses ``lm_head.weight`` of an opted-in architecture.

    Always when the tie flag was only a default (loading on would leave the head uninitialised, a
    silently wrong model: ``strict=False`` does not help); under ``strict`` when the config states
    untied. The hint never suggests ``--no-strict``: a missing head is no tensor to do without.
    """
    if KEY not in normalised or f"{HEAD}.weight" not in report.missing or f"{EMBED}.weight" in report.missing:
        return
    if _defaulted_untied(config, normalised):
        raise WeightsMismatchError(
            f"{report.message()}\n{HEAD}.weight is missing and the config omits {KEY}, whose default for "
            f"{report.architecture or 'this architecture'} is untied (its own lm_head.weight)", report=report, hint=_set_true_hint(path))
    if strict:
        raise WeightsMismatchError(
            f"{report.message()}\n{HEAD}.weight is missing although the config says \"{KEY}\": false", report=report,
            hint=f"{_set_true_hint(path)}; else the checkpoint is incomplete: download or convert it again")
