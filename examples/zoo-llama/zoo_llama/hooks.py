"""zoo-llama's hook implementations. Everything is registered lazily, as strings."""

from zoo_registry import hookimpl


@hookimpl
def register_architectures(register):
    register(
        "zoo_llama",
        model="zoo_llama.model:Model",
        config_schema="zoo_llama:schemas/zoo_llama.config.schema.json",
        rules="zoo_llama:rules/zoo_llama.yaml",
        normalize="zoo_llama.config:normalize",
        description="Llama / Qwen2 decoders: GQA, SwiGLU, default/linear/llama3 RoPE, optional q/k/v bias",
    )


@hookimpl
def register_components(register):
    register("zoo_llama.decoder_layer", "zoo_llama.model:DecoderLayer",
             "Llama / Qwen2 pre-norm decoder layer (GQA attention + SwiGLU MLP) built from zoo's runtime")
    # zoo-llama 0.1 registered zoo's own Llama3RoPE under this name; it still answers, with a
    # ZooWarning naming zoo.rope.llama3 (see zoo_llama/deprecated.py)
    register("llama3_rope", "zoo_llama.deprecated:Llama3RoPE", "deprecated: use zoo.rope.llama3")


@hookimpl
def register_sanitize_ops(register):
    register(
        "interleaved_to_halves",
        "zoo_llama.ops:InterleavedToHalves",
        "permute q/k rows from Meta's interleaved RoPE pairs to the half-split layout",
    )


@hookimpl
def register_model_cards(register):
    register("zoo_llama:cards")


@hookimpl
def register_output_parsers(register):
    register("zoo_llama_think", "zoo_llama.chat:OUTPUT_FORMAT", architectures=("zoo_llama",),
             description="DeepSeek-R1 distills reason in <think>…</think> before the answer")


@hookimpl
def register_tokenizers(register):
    register("QWenTokenizer", "zoo_llama.tokenizer:qwen_recipe", "Qwen (v1)'s tiktoken tokenizer, from qwen.tiktoken")
