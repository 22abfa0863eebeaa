"""The registration kinds that shape text: output parsers and tokenizers.

``register_output_parsers`` gives a parser (tag facts or a splitter factory) and the architectures
that use it; ``register_tokenizers`` gives a builder for a tokenizer class name a checkpoint
declares. :class:`TextStaging` collects one plugin's of both, :func:`check_text_kinds` refuses
duplicates before anything is merged, and :class:`TextLookups` is how the registry answers for
them. The registry (:mod:`.registry`) mixes these in; nothing here knows about it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from .errors import UnknownNameError, did_you_mean
from .registration import check_description, check_name, check_names, check_target


@dataclass(frozen=True)
class OutputParser:
    """An output parser (tag facts or a splitter factory) and the architectures that use it."""

    name: str
    target: str
    provider: str
    architectures: Tuple[str, ...] = ()
    description: str = ""

    def load(self):
        from .resources import import_target

        return import_target(self.target)

    def as_dict(self):
        return {"name": self.name, "target": self.target, "provider": self.provider,
                "architectures": list(self.architectures), "description": self.description}


class TextStaging:
    """The ``register`` callbacks of ``register_output_parsers`` and ``register_tokenizers``.

    Mixed into the registry's per-plugin staging, which provides ``plugin``, ``_where``,
    ``_named``, and the ``parsers`` and ``tokenizers`` lists.
    """

    def tokenizer(self, tokenizer_class, builder, description=""):
        self._named("tokenizer", "register_tokenizers", self.tokenizers, tokenizer_class, builder, description)

    def output_parser(self, name, target, *, architectures=(), description=""):
        where = self._where("register_output_parsers")
        check_name(name, where, "output parser name")
        check_target(target, where, "output parser")
        check_names(architectures, where, f"architectures of {name!r}", "architecture")
        check_description(description, where, name)
        self.parsers.append(OutputParser(name, target, self.plugin, tuple(architectures), description))


def check_text_kinds(registry, stage, owner) -> Dict[str, str]:
    """Refuse a tokenizer or parser name (or an architecture's parser) registered twice.

    ``owner(kind, name, provider)`` makes the error. Returns the new ``model_type -> parser``
    entries, for :func:`merge_text_kinds`.
    """
    seen = set()
    for item in stage.tokenizers:
        if item.name in registry.tokenizers or item.name in seen:
            raise owner("tokenizer", item.name, registry.tokenizers[item.name].provider
                        if item.name in registry.tokenizers else stage.plugin)
        seen.add(item.name)
    parser_for = {}
    for parser in stage.parsers:
        if parser.name in registry.output_parsers or any(p.name == parser.name for p in stage.parsers if p is not parser):
            raise owner("output parser", parser.name, registry.output_parsers[parser.name].provider
                        if parser.name in registry.output_parsers else stage.plugin)
        for arch in parser.architectures:
            other = registry._parser_for.get(arch) or parser_for.get(arch)
            if other is not None:
                raise owner("the output parser of architecture", arch, registry.output_parsers[other].provider
                            if other in registry.output_parsers else stage.plugin)
            parser_for[arch] = parser.name
    return parser_for


def merge_text_kinds(registry, stage, parser_for: Dict[str, str]) -> None:
    """Keep what :func:`check_text_kinds` accepted."""
    registry.output_parsers.update({p.name: p for p in stage.parsers})
    registry._parser_for.update(parser_for)
    registry.tokenizers.update({t.name: t for t in stage.tokenizers})


class TextLookups:
    """The registry's answers about output parsers and tokenizers.

    Mixed into the registry, which provides ``architectures``, ``output_parsers``, ``_parser_for``
    (``model_type -> parser name``) and ``tokenizers``.
    """

    def output_parser(self, name: str) -> OutputParser:
        if name not in self.output_parsers:
            raise UnknownNameError(f"no plugin registered an output parser {name!r}{did_you_mean(name, self.output_parsers)}")
        return self.output_parsers[name]

    def output_parser_for(self, model_type: str) -> Optional[OutputParser]:
        """The parser registered for ``model_type`` (or for the architecture it is an alias of)."""
        names = [model_type]
        arch = self.architectures.get(model_type)
        if arch is not None:
            names += [arch.name, *arch.aliases]
        for name in names:
            if name in self._parser_for:
                return self.output_parsers[self._parser_for[name]]
        return None

    def tokenizer(self, name: str):
        """The builder (a :class:`~zoo_registry.registry.Named`) registered for tokenizer class ``name``."""
        if name not in self.tokenizers:
            raise UnknownNameError(f"no plugin registered a tokenizer {name!r}{did_you_mean(name, self.tokenizers)}")
        return self.tokenizers[name]
