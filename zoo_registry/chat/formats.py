"""Which output parser a model uses: the one its plugin registered, or one named by the user.

Order: an explicit name (``zoo generate --output-parser NAME``), then the parser registered for the
model's architecture (hook ``register_output_parsers``), then the generic ``think`` splitter when
the chat template mentions ``<think>``, else none. Two names are built in, ahead of the plugins'
(see :data:`BUILT_IN`): ``none`` turns parsing off, ``think`` is the generic ``<think>…</think>``
splitter.
"""

from __future__ import annotations

from typing import Optional

from ..errors import PluginError, UnknownNameError
from .output import PLAIN, THINK, OutputFormat

NONE, GENERIC = "none", "think"
BUILT_IN = {NONE: PLAIN, GENERIC: THINK}  # names every zoo has, whatever the plugins


def output_format(model_type: Optional[str] = None, *, name: Optional[str] = None, tokenizer=None, registry=None):
    """An :class:`OutputFormat` (or a plugin's splitter factory) and the name it came from.

    ``registry``: where the plugins' parsers are (default: the process-wide registry, resolved here,
    at this public function, only when a plugin's parser is looked up)."""
    if name in BUILT_IN:
        return BUILT_IN[name], name
    if registry is None:
        from ..registry import get_registry

        registry = get_registry()
    try:
        parser = registry.output_parser(name) if name else (registry.output_parser_for(model_type) if model_type else None)
    except UnknownNameError as e:
        raise UnknownNameError(f"{e.message} (built in: {', '.join(BUILT_IN)})", hint=e.hint) from None
    if parser is not None:
        target = parser.load()
        if not (isinstance(target, OutputFormat) or callable(target)):
            raise PluginError(f"output parser {parser.name!r} of plugin {parser.provider!r}: {parser.target} is a "
                              f"{type(target).__name__}, not an OutputFormat or a callable f(prompt) -> splitter")
        return target, parser.name
    template = getattr(tokenizer, "chat_template", None) if tokenizer is not None else None
    if isinstance(template, str) and THINK.reasoning[0] in template:
        return THINK, GENERIC
    return PLAIN, NONE


def make_splitter(fmt, prompt: str = ""):
    """A fresh splitter for one response (``prompt``: the rendered prompt text, or its end)."""
    if isinstance(fmt, OutputFormat):
        return fmt.splitter(prompt)
    return fmt(prompt)
