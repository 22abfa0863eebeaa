"""What a load did: the :class:`LoadInfo` record ``zoo load``, ``--explain`` and :func:`plan` show."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional


@dataclass
class LoadInfo:
    """What :func:`~zoo_registry.loading.load_model` did, for ``zoo load`` and ``--explain``."""

    path: Path
    architecture: str
    provider: str
    config: Dict[str, Any]
    report: Optional[Any] = None  # sanitize.report.LoadReport (None for mlx-lm built-ins)
    seconds: float = 0.0
    quantization: Optional[Dict[str, Any]] = None
    card: Optional[Any] = None
    raw_config: Dict[str, Any] = field(default_factory=dict, repr=False)  # config.json + overrides, before normalising
    pickle_files: list = field(default_factory=list)  # weight files read with the restricted pickle reader

    def as_dict(self) -> dict:
        return {
            "path": str(self.path),
            "architecture": self.architecture,
            "provider": self.provider,
            "seconds": round(self.seconds, 3),
            "quantization": self.quantization,
            "card": getattr(self.card, "name", self.card),
            "report": self.report.as_dict() if self.report is not None else None,
            "pickle_files": [str(p) for p in self.pickle_files],
        }
