"""Chat-level generation: prompts with a thinking switch, checkpoint sampling defaults, and output
split into reasoning, answer text and tool calls (streaming or not).

Importing this package does not import MLX.

- :mod:`.output`: :class:`OutputFormat` (a family's tag facts), :class:`OutputSplitter`, :func:`split`;
- :mod:`.formats`: which parser a model uses (hook ``register_output_parsers``);
- :mod:`.prompt`: :func:`render` a prompt with ``enable_thinking``;
- :mod:`.defaults`: sampling from ``generation_config.json`` and the user's overrides;
- :mod:`.loop`: the one generation loop (:func:`steps`, one :class:`Step` per token), which
  ``zoo serve`` runs too (KV-cache reuse, stop strings, cancellation, log-probabilities);
- :mod:`.generate`: :class:`TextGenerator`, ``stream`` / ``generate`` returning events and results.
"""

from .defaults import Sampling
from .formats import make_splitter, output_format
from .generate import Result, TextGenerator, stream_events
from .loop import Step, steps
from .output import PLAIN, THINK, Event, Output, OutputFormat, OutputSplitter, ToolCall, split
from .prompt import Prompt, render

__all__ = [
    "PLAIN", "THINK", "Event", "Output", "OutputFormat", "OutputSplitter", "Prompt", "Result", "Sampling", "Step",
    "TextGenerator", "ToolCall", "make_splitter", "output_format", "render", "split", "steps", "stream_events",
]
