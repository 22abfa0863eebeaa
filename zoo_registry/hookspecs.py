"""The plugin contract: a few small hooks, each given a ``register`` callback.

A plugin is a module (or object) with functions decorated by ``zoo_registry.hookimpl`` and named
exactly as below, published through the ``zoo`` entry-point group of its distribution::

    [options.entry_points]
    zoo =
        myplugin = myplugin.hooks

Registrations are *lazy*: targets are ``"package.module:attribute"`` strings and data files are
``"package:relative/path"`` resources, so listing and validating never import model code or MLX.
Registering a name that another plugin already registered is an error naming both plugins.
"""

import pluggy

hookspec = pluggy.HookspecMarker("zoo")
hookimpl = pluggy.HookimplMarker("zoo")


@hookspec
def register_architectures(register):
    """Register model architectures (one per Hugging Face ``model_type``).

    Call ``register(model_type, *, model, config_schema, rules=None, normalize=None, aliases=(),
    description="")`` once per architecture:

    - ``model``: ``"module:attr"`` naming a callable ``f(config: dict) -> mlx.nn.Module`` that builds
      the model from a validated, normalised config.
    - ``config_schema``: ``"package:path/to/schema.json"``, a JSON Schema (draft 2020-12) for the
      architecture's ``config.json``; every property needs a ``description`` (checked when the
      hook runs, through ``$ref``-ed ``$defs`` and branches).
    - ``rules``: ``"package:path/to/rules.yaml"``, sanitize rules mapping checkpoint layouts onto
      the model's parameter names (validated against ``schemas/sanitize-rules.schema.json``).
    - ``normalize``: ``"module:attr"`` naming ``f(config: dict) -> dict`` that runs after schema
      validation, applies cross-field checks (raising ``zoo_registry.ConfigError``) and returns the
      config the model is built from. It must not import MLX.
    - ``aliases``: other ``model_type`` strings served by the same architecture.

    A plugin architecture takes precedence over mlx-lm's built-in module of the same name.
    Every ``register`` callback refuses a misspelt keyword with a "did you mean", naming the plugin.
    """


@hookspec
def register_components(register):
    """Register the reusable runtime components a plugin adds (a decoder block, a RoPE variant, ...).

    Call ``register(name, target, description="")`` where ``target`` is ``"module:attr"``. Name
    components after the plugin (``"myplugin.block"``): names must be unique across plugins, and
    the ``zoo.`` namespace is reserved for zoo's own runtime, which the core registers itself
    (``zoo.attention``, ``zoo.moe``, ``zoo.rope.ntk_alpha``, ...; see ``zoo info zoo.moe``).
    Anyone looks components up with ``zoo_registry.get_component(name)``.
    """


@hookspec
def register_sanitize_ops(register):
    """Register sanitize operations that rule files may name beside the built-in ones.

    Call ``register(name, target, description="")`` where ``target`` is ``"module:attr"`` naming a
    class implementing ``zoo_registry.sanitize.Op`` (forward, and inverse where it exists).
    """


@hookspec
def register_model_cards(register):
    """Register model cards (YAML files validated against ``schemas/card.schema.json``).

    Call ``register(resource)`` where ``resource`` is ``"package:path/card.yaml"`` or
    ``"package:path/dir"`` (every ``*.yaml`` in it). A card's ``name`` and ``aliases`` must be
    unique across all plugins.
    """


@hookspec
def register_output_parsers(register):
    """Register how a model family's output splits into reasoning, answer and tool calls.

    Call ``register(name, target, *, architectures=(), description="")``:

    - ``name``: the parser's name, unique across plugins (``zoo generate --output-parser NAME``).
    - ``target``: ``"module:attr"`` naming a ``zoo_registry.chat.OutputFormat`` (the tag facts:
      reasoning, answer-wrapper and tool-call tags, thinking-switch prefixes), or a callable
      ``f(prompt: str)`` returning a splitter with ``feed(chunk) -> [Event]`` and
      ``finish() -> [Event]`` (see ``zoo_registry.chat.output``). Imported on first use.
    - ``architectures``: the ``model_type`` strings (or their aliases) whose models use it by
      default; each may be claimed by one parser only.

    It must not import MLX.
    """


@hookspec
def register_tokenizers(register):
    """Register tokenizer builders for the tokenizer classes a plugin's checkpoints declare.

    Call ``register(tokenizer_class, builder, description="")`` once per class name, as written in
    a checkpoint's ``tokenizer_config.json`` (``tokenizer_class``, or the class of
    ``auto_map.AutoTokenizer``, e.g. ``"HYTokenizer"``):

    - ``builder``: ``"module:attr"`` naming ``f(folder: pathlib.Path, declared: dict) ->
      zoo_registry.tokenizer.TiktokenRecipe | None``. ``declared`` is the folder's
      ``tokenizer_config.json``. The builder reads the folder as data only (it must never import
      the checkpoint's Python files) and returns the recipe (rank file, split pattern,
      normalisation, special tokens and their ids, default bos/eos/pad), or ``None`` when the folder
      lacks the data it needs (zoo then tries transformers' built-in classes).

    zoo converts the recipe once per rank file (cached), applies the folder's chat template and
    bos/eos/pad, and returns mlx-lm's ``TokenizerWrapper``; no remote-code warning is given.
    """
