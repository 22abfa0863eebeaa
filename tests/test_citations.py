"""The project cites public sources (papers, repositories, model pages), never a team's private
notes: a user has no ``shared/reference`` folder and no ``/work`` machine. Tests may *read* Tencent's
released files as test data (``ZOO_HUNYUAN_DATA``), which is a data location, not a citation."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRIVATE = ("shared/reference", "/work/")
SKIP_SUFFIXES = {".safetensors", ".so", ".tiktoken", ".png", ".bin", ".gguf"}


def tracked_files() -> list:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / line for line in out.splitlines() if line]


def test_no_file_points_at_private_notes():
    files = [f for f in tracked_files() if f.suffix not in SKIP_SUFFIXES and f.is_file()]
    assert len(files) > 200  # the whole tree, not an empty listing
    offenders = []
    for f in files:
        if f == Path(__file__).resolve():
            continue
        text = f.read_text(encoding="utf-8", errors="replace")
        for n, line in enumerate(text.splitlines(), 1):
            if any(p in line for p in PRIVATE):
                offenders.append(f"{f.relative_to(ROOT)}:{n}: {line.strip()[:100]}")
    assert not offenders, "cite a public source instead:\n" + "\n".join(offenders)
