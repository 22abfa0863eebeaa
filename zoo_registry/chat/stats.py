"""What one generation measured (the summary mlx_lm.generate prints after the text)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional


@dataclass
class GenerationStats:
    prompt_tokens: int = 0
    prompt_tps: float = 0.0
    generation_tokens: int = 0
    generation_tps: float = 0.0
    peak_memory_gb: float = 0.0
    finish_reason: Optional[str] = None

    def record(self, response) -> None:
        """Take the figures of one of mlx-lm's ``GenerationResponse`` s (the latest wins)."""
        self.prompt_tokens, self.prompt_tps = response.prompt_tokens, response.prompt_tps
        self.generation_tokens, self.generation_tps = response.generation_tokens, response.generation_tps
        self.peak_memory_gb, self.finish_reason = response.peak_memory, response.finish_reason

    def lines(self) -> List[str]:
        """The summary mlx_lm.generate prints after the text."""
        return [
            f"Prompt: {self.prompt_tokens} tokens, {self.prompt_tps:.3f} tokens-per-sec",
            f"Generation: {self.generation_tokens} tokens, {self.generation_tps:.3f} tokens-per-sec",
            f"Peak memory: {self.peak_memory_gb:.3f} GB",
        ]
