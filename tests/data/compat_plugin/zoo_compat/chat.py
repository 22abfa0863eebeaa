"""The tags compat_decoder's reasoning checkpoints write (facts, no code)."""

from zoo_registry.chat import OutputFormat

OUTPUT_FORMAT = OutputFormat(reasoning=("<think>", "</think>"), description="reasoning in <think>…</think>")
