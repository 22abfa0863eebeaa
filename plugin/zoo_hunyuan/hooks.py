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
    register("ntk_alpha_rope", "zoo_registry.runtime.rope:NTKAlphaRoPE", "RoPE with HunYuan's NTK-alpha base scaling")
    register("linear_rope", "zoo_registry.runtime.rope:LinearRoPE", "RoPE with positions divided by a factor")
    register("dynamic_ntk_rope", "zoo_registry.runtime.rope:DynamicNTKRoPE", "RoPE whose base grows past the trained length")
    register("cla_attention", "zoo_registry.runtime.attention:Attention", "GQA attention, QK-norm after RoPE, cross-layer K/V sharing")
    register("moe", "zoo_registry.runtime.moe:MoE", "top-k MoE with fp32 router, optional shared MLP, on SwitchGLU")


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
