"""What the reasoning models among zoo-llama's checkpoints write (facts, no code).

DeepSeek-R1's distilled Llama and Qwen2 models (DeepSeek-AI, "DeepSeek-R1", arXiv:2501.12948)
reason in ``<think>…</think>`` before they answer; their chat template opens the block at the end
of the prompt, which zoo's splitter notices. Models that never write the tags pass through as is.
"""

from zoo_registry.chat.output import OutputFormat

OUTPUT_FORMAT = OutputFormat(reasoning=("<think>", "</think>"), description="reasoning in <think>…</think>")
