"""The HunYuan plugin's hook implementations: everything is registered lazily, as strings."""

from zoo_registry import hookimpl

_SCHEMA = "zoo_hunyuan:schemas/{}.config.schema.json"
_RULES = "zoo_hunyuan:rules/{}.yaml"


@hookimpl
def register_architectures(register):
    register(
        "hunyuan",
        model="zoo_hunyuan.model:build",
        config_schema=_SCHEMA.format("hunyuan"),
        rules=_RULES.format("hunyuan"),
        normalize="zoo_hunyuan.config:normalize",
        aliases=("hunyuan_v1_moe",),  # transformers' name for Hunyuan-A13B checkpoints
        description="HunYuan MoE: HunYuan-Large (top-1, shared MLP, CLA), Hunyuan-A13B (top-8), legacy Hunyuan-7B",
    )
    register(
        "hunyuan_v1_dense",
        model="zoo_hunyuan.model:build",
        config_schema=_SCHEMA.format("hunyuan_v1_dense"),
        rules=_RULES.format("hunyuan_v1_dense"),
        normalize="zoo_hunyuan.config:normalize",
        description="Hunyuan dense 0.5B/1.8B/4B/7B (HunYuanDenseV1ForCausalLM)",
    )


@hookimpl
def register_components(register):
    # zoo registers the shared runtime it is built from (zoo.attention with CLA, zoo.moe,
    # zoo.rope.ntk_alpha, ...); HunYuan registers only what it adds, under its own name.
    register("hunyuan.decoder_layer", "zoo_hunyuan.model:DecoderLayer",
             "HunYuan's pre-norm block: CLA-aware attention, then a dense SwiGLU or a top-k MoE with shared MLP")
    register("hunyuan.build", "zoo_hunyuan.model:build", "builds a HunYuan model (MoE or dense) from a config dict")


@hookimpl
def register_sanitize_ops(register):
    register("split_grouped_qkv", "zoo_hunyuan.ops:SplitGroupedQKV", "split a fused qkv_proj whose rows are grouped per KV head")


@hookimpl
def register_model_cards(register):
    register("zoo_hunyuan:cards")


@hookimpl
def register_output_parsers(register):
    register(
        "hunyuan",
        "zoo_hunyuan.chat:OUTPUT_FORMAT",
        architectures=("hunyuan", "hunyuan_v1_dense"),
        description="<think>…</think> reasoning, <answer>…</answer> wrapper, <tool_calls>[…]</tool_calls>",
    )


@hookimpl
def register_tokenizers(register):
    register("HYTokenizer", "zoo_hunyuan.tokenizer:recipe", "Tencent's tiktoken tokenizer (hy.tiktoken), rebuilt from data without its code")
