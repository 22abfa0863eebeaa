"""zoo-compat's hook implementations, strings only (nothing heavy is imported here)."""

from zoo_registry import hookimpl


@hookimpl
def register_architectures(register):
    register(
        "compat_decoder",
        model="zoo_compat.model:Model",
        config_schema="zoo_compat:schemas/compat_decoder.config.schema.json",
        rules="zoo_compat:rules/compat_decoder.yaml",
        normalize="zoo_compat.config:normalize",
        aliases=("compat_decoder_v1",),
        description="a small pre-norm GQA decoder (compatibility test plugin)",
    )


@hookimpl
def register_components(register):
    register("compat_rope", "zoo_registry.runtime.rope:RoPE", "plain RoPE, as the compat decoder uses it")


@hookimpl
def register_sanitize_ops(register):
    register("compat_conv1d_to_linear", "zoo_compat.ops:Conv1DToLinear", "GPT-2 style [in, out] weights to nn.Linear's [out, in]")


@hookimpl
def register_model_cards(register):
    register("zoo_compat:cards")


@hookimpl
def register_output_parsers(register):
    register("compat_think", "zoo_compat.chat:OUTPUT_FORMAT", architectures=("compat_decoder",),
             description="reasoning in <think>…</think>")


@hookimpl
def register_tokenizers(register):
    register("CompatTokenizer", "zoo_compat.tokenizer:recipe", "byte-level tiktoken ranks in compat.tiktoken")
