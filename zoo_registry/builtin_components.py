"""zoo's own runtime components, registered by the core through the same hook as a plugin's.

Every registry starts with these (provider ``zoo``), under the reserved ``zoo.`` namespace: no
plugin may register a name starting with ``zoo.``, so a plugin can never shadow them, and a plugin
registers only what it adds, under its own names. ``zoo_registry.get_component("zoo.moe")``
returns :class:`zoo_registry.runtime.moe.MoE`; ``zoo info zoo.moe`` describes it.

Before the core registered them, the HunYuan plugin registered some of these classes under bare
names (``moe``, ``cla_attention``, ...). Those names keep working through
:data:`DEPRECATED_NAMES` with a :class:`~zoo_registry.errors.ZooWarning` naming the new one, as
long as no plugin registers the bare name itself (then the plugin's component wins, and nothing of
anybody's is lost).
"""

from .hookspecs import hookimpl

PROVIDER = "zoo"
RESERVED_PREFIX = "zoo."

_RUNTIME = "zoo_registry.runtime."


@hookimpl
def register_components(register):
    register("zoo.rope", _RUNTIME + "rope:RoPE", "plain rotary position embedding (RoFormer, arXiv:2104.09864)")
    register("zoo.rope.linear", _RUNTIME + "rope:LinearRoPE", "RoPE with positions divided by a factor")
    register("zoo.rope.ntk_alpha", _RUNTIME + "rope:NTKAlphaRoPE",
             "RoPE whose base is stretched by NTK-alpha (HunYuan-Large, arXiv:2411.02265)")
    register("zoo.rope.dynamic_ntk", _RUNTIME + "rope:DynamicNTKRoPE", "RoPE whose base grows past the trained length")
    register("zoo.rope.llama3", _RUNTIME + "rope:Llama3RoPE", "RoPE with Llama 3.1's wavelength-dependent scaling")
    register("zoo.rope.make", _RUNTIME + "rope:make_rope", "builds the RoPE variant a config's rope_scaling names")
    register("zoo.attention", _RUNTIME + "attention:Attention",
             "GQA attention (arXiv:2305.13245), optional QK-norm (arXiv:2010.04245; before or after RoPE, "
             "per head or over the projection), cross-layer K/V sharing (CLA, arXiv:2405.12981)")
    register("zoo.mlp", _RUNTIME + "mlp:MLP", "SwiGLU MLP")
    register("zoo.moe", _RUNTIME + "moe:MoE", "top-k MoE with fp32 router, optional shared MLP, on mlx-lm's SwitchGLU")
    register("zoo.moe.router", _RUNTIME + "moe:Router", "the MoE's fp32 router (kept in full precision when quantizing)")
    register("zoo.linear", _RUNTIME + "linear:Linear", "nn.Linear that computes half-precision products in float32 where faster")
    register("zoo.linear.quantized", _RUNTIME + "linear:QuantizedLinear", "nn.QuantizedLinear served by zoo's CPU kernels")
    register("zoo.cache.shared_kv", _RUNTIME + "cache:SharedKV", "CLA: K/V stored once per layer group in mlx-lm's prompt caches")


# old name -> the name that replaced it (what the HunYuan plugin registered before the core did)
DEPRECATED_NAMES = {
    "ntk_alpha_rope": "zoo.rope.ntk_alpha",
    "linear_rope": "zoo.rope.linear",
    "dynamic_ntk_rope": "zoo.rope.dynamic_ntk",
    "cla_attention": "zoo.attention",
    "moe": "zoo.moe",
}
