"""What HunYuan's instruct models write, and how their thinking is switched (facts, no code).

Hunyuan-A13B-Instruct answers ``<think>\\n…\\n</think>\\n<answer>\\n…\\n</answer>`` and, when it
calls tools, ``<answer><tool_calls>[{"name": …, "arguments": {…}}, …]</tool_calls></answer>``
(the tool prompt of its chat template, and Tencent's ``agent/README.md`` and
``agent/hunyuan_tool_parser.py`` in github.com/Tencent-Hunyuan/Hunyuan-A13B). It thinks by default;
the model card gives two switches: ``enable_thinking=False`` for ``apply_chat_template`` (the
template then ends the prompt with ``<think>\\n\\n</think>\\n``), or ``/no_think`` (``/think``)
written before the user's message (``agent/gen_train_data.py`` prefixes ``f"/no_think{content}"``).
zoo uses the template variable when the template has it, and the prefixes only when the template
mentions ``<think>`` (HunYuan-Large's and the legacy 7B's templates do not: those models do not
reason, and the switch is ignored with a warning).

The newer dense Hunyuan models (0.5B–7B) use the same ``<think>``/``<answer>`` tags. HunYuan-Large
does not reason; its output has no tags and passes through unchanged.
"""

from zoo_registry.chat.output import OutputFormat

OUTPUT_FORMAT = OutputFormat(
    reasoning=("<think>", "</think>"),
    answer=("<answer>", "</answer>"),
    tool_calls=("<tool_calls>", "</tool_calls>"),
    thinking_prefixes=("/think", "/no_think"),
    description="HunYuan: <think>…</think> reasoning, <answer>…</answer> answer, <tool_calls>[…]</tool_calls>",
)
