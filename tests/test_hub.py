"""Hub resolution against a local Hugging Face Hub: what is fetched, refused, cached, planned.

huggingface_hub's real client talks to :mod:`hub_server` (HTTP on 127.0.0.1), which serves fake
repos laid out like Tencent's real ones (see the docstring of :func:`releases`), built from a tiny
real HunYuan checkpoint: safetensors shards written by MLX, PyTorch pickles written by
``torch.save``, FP8 shards with ``float8_e4m3fn`` weights and ``weight_scale`` as Tencent's -FP8
releases have. Every assertion about downloads is on what the server actually sent.
"""

from __future__ import annotations

import base64
import os
import hashlib
import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from hub_server import FakeHub, fake_hub  # noqa: F401 - fixture
from loading_fixtures import TINY, max_diff, per_expert, reference_weights, write_checkpoint
from zoo_registry import cards, hub
from zoo_registry.errors import CheckpointError, CheckpointNotFoundError, UnsafeInputError
from zoo_registry.loading import load_model, plan, resolve_source
from zoo_registry.registry import Registry

LARGE = "tencent/Tencent-Hunyuan-Large"
A13B = "tencent/Hunyuan-A13B-Instruct"
LEGACY_7B = "tencent/Hunyuan-7B-Instruct-0124"
TOKENIZER_ONLY = "pcuenq/Hunyuan-7B-Instruct-tokenizer"
CONFIG = dict(TINY, architectures=["HunYuanForCausalLM"], auto_map={"AutoModelForCausalLM": "modeling_hunyuan.HunYuanForCausalLM"},
              bos_token_id=1, eos_token_id=2, pad_token_id=0, torch_dtype="bfloat16")
PY = b"# Tencent's Python code ships with the weights; zoo never downloads or runs it\n"


def _tiktoken() -> bytes:
    """A ``hy.tiktoken`` in the real format (``base64(token) rank`` per line), the 256 byte tokens."""
    return b"".join(base64.b64encode(bytes([i])) + b" %d\n" % i for i in range(256))


def _tokenizer_files() -> dict:
    return {
        "hy.tiktoken": _tiktoken(),
        "tokenizer_config.json": json.dumps({"tokenizer_class": "HYTokenizer", "auto_map": {"AutoTokenizer": ["tokenization_hy.HYTokenizer", None]},
                                             "model_max_length": 131072}),
        "tokenization_hy.py": PY,
        "generation_config.json": json.dumps({"eos_token_id": [127960, 127967], "pad_token_id": 127961}),
    }


def _folder(root: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(root.iterdir()) if p.is_file()}


def _pickles(tensors: dict, shards: int) -> dict:
    """``pytorch_model-0000i-of-0000n.bin`` written by ``torch.save`` (PyTorch's zip format) + index."""
    import torch

    names, files, weight_map = sorted(tensors), {}, {}
    for i in range(shards):
        fname = f"pytorch_model-{i + 1:05d}-of-{shards:05d}.bin"
        buf = io.BytesIO()
        torch.save({k: torch.from_numpy(np.array(tensors[k])) for k in names[i::shards]}, buf)
        files[fname] = buf.getvalue()
        weight_map.update({k: fname for k in names[i::shards]})
    files["pytorch_model.bin.index.json"] = json.dumps({"metadata": {}, "weight_map": weight_map})
    return files


def _fp8(tensors: dict, shards: int) -> dict:
    """Tencent's FP8 layout: linear weights as ``float8_e4m3fn`` with a per-tensor ``weight_scale``."""
    import torch
    from safetensors.torch import save

    out = {}
    for k, v in tensors.items():
        t = torch.from_numpy(np.array(v))
        if k.endswith("proj.weight"):
            scale = t.abs().max().clamp(min=1e-12) / 448.0
            out[k] = (t / scale).to(torch.float8_e4m3fn)
            out[k[: -len("weight")] + "weight_scale"] = scale.reshape(1).float()
            out[k[: -len("weight")] + "input_scale"] = torch.ones(1)
        else:
            out[k] = t
    names, files, weight_map = sorted(out), {}, {}
    for i in range(shards):
        fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        files[fname] = save({k: out[k] for k in names[i::shards]})
        weight_map.update({k: fname for k in names[i::shards]})
    files["model.safetensors.index.json"] = json.dumps({"metadata": {}, "weight_map": weight_map})
    return files


def _under(prefix: str, files: dict) -> dict:
    return {f"{prefix}/{k}": v for k, v in files.items()}


@pytest.fixture(scope="module")
def ref():
    return reference_weights(TINY, seed=13)


@pytest.fixture(scope="module")
def releases(tmp_path_factory, ref):
    """repo id -> {path: bytes}, laid out like Tencent's releases (huggingface.co/tencent):

    - Tencent-Hunyuan-Large: a 17-byte top-level ``config.json`` stub and variant folders,
      ``Hunyuan-A52B-Instruct/`` (``pytorch_model-*.bin`` pickles + ``pytorch_model.bin.index.json``),
      ``Hunyuan-A52B-Instruct-FP8/`` (FP8 safetensors shards + index) and ``Hunyuan-A52B-Pretrain/``
      (modelled with pickles too), each with hy.tiktoken tokenizer files and Tencent's ``*.py``;
    - Hunyuan-A13B-Instruct: safetensors shards with an index misnamed ``pytorch_model.bin.index.json``;
    - Hunyuan-7B-Instruct-0124 (the legacy 7B): one ``pytorch_model-00001-of-00001.bin`` pickle;
    - a tokenizer-only repo (``tokenizer.json``, ``tokenizer_config.json``, ``chat_template.jinja``).
    """
    tensors = per_expert(ref, TINY["num_experts"])
    sharded = _folder(write_checkpoint(tmp_path_factory.mktemp("st") / "m", tensors, CONFIG, shards=2))
    index = sharded.pop("model.safetensors.index.json")
    config = json.dumps(CONFIG).encode()
    variant = {"config.json": config, "configuration_hunyuan.py": PY, "modeling_hunyuan.py": PY, **_tokenizer_files()}
    large = {"config.json": b'{"downloads": 1}\n', "README.md": b"# Hunyuan-Large\n", "LICENSE.txt": b"TENCENT HUNYUAN\n",
             **_under("Hunyuan-A52B-Instruct", {**variant, **_pickles(tensors, 2)}),
             **_under("Hunyuan-A52B-Instruct-FP8", {**variant, **_fp8(tensors, 2)}),
             **_under("Hunyuan-A52B-Pretrain", {**variant, **_pickles(tensors, 2)})}
    a13b = {**variant, **sharded, "pytorch_model.bin.index.json": index, "README.md": b"# A13B\n"}
    legacy = {**variant, **_pickles(tensors, 1)}
    tok_only = {"tokenizer.json": b'{"version": "1.0"}', "tokenizer_config.json": b"{}", "chat_template.jinja": b"{{ messages }}",
                "README.md": b"# tokenizer\n"}
    repos = {LARGE: large, A13B: a13b, LEGACY_7B: legacy, TOKENIZER_ONLY: tok_only}
    return {r: {p: (b.encode() if isinstance(b, str) else b) for p, b in files.items()} for r, files in repos.items()}


@pytest.fixture
def server(isolated_home, fake_hub, releases, monkeypatch):  # noqa: F811 - fixture from hub_server
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # isolated_home turns it on
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for repo_id, files in releases.items():
        fake_hub.add(repo_id, files)
    return fake_hub


def sent(server: FakeHub, repo_id: str, mark: int = 0) -> dict:
    """repo path -> bytes the server sent for it."""
    return {k.split(":", 1)[1]: v for k, v in server.downloads(mark).items() if k.startswith(repo_id + ":")}


def expected(files: dict, paths) -> dict:  # path -> size, for comparing with sent()
    return {p: len(files[p]) for p in paths}


def cache_blobs() -> list:
    from zoo_registry.checkpoint import hf_cache_dir

    return sorted(p.name for p in hf_cache_dir().rglob("blobs/*"))


# -- the Large card -------------------------------------------------------------------------------


def test_large_card_downloads_only_its_folder(server, releases):
    card = cards.resolve("hunyuan-large-instruct", Registry.discover())
    folder = card.source["subfolder"]
    files = releases[LARGE]
    here = {p: b for p in files if p.startswith(folder + "/") and "/" not in p[len(folder) + 1:] for b in [files[p]]}
    pickles = any(p.endswith(".bin") for p in here)
    with hub.options(allow_pickle_weights=pickles):
        path = cards.materialize(card)
    assert path.name == folder and (path / "config.json").read_bytes() == files[f"{folder}/config.json"]
    needed = [p for p in here if not p.endswith(".py")]
    assert sent(server, LARGE) == expected(files, needed)  # every byte the server sent, file by file
    assert all(p.startswith(folder + "/") for p in sent(server, LARGE))
    assert server.file_bytes_sent() == sum(len(files[p]) for p in needed)
    assert [("cursor=" in r.path) for r in server.log if "/tree/" in r.path] == [False, True]  # the listing took 2 pages
    assert not any(r.authorization for r in server.log)


def test_pickle_only_folder_is_refused_before_any_download(server):
    with pytest.raises(UnsafeInputError) as err:
        hub.resolve(LARGE, subfolder="Hunyuan-A52B-Instruct")
    message, hint = str(err.value), err.value.hint
    assert "Hunyuan-A52B-Instruct: holds only PyTorch pickle weights (2 file(s): pytorch_model-00001-of-00002.bin" in message
    assert "nothing was downloaded" in message
    assert "--allow-pickle-weights" in hint and "zoo convert" in hint
    assert "Hunyuan-A52B-Instruct-FP8/: 2 safetensors file(s)" in hint
    assert "community safetensors conversion (https://huggingface.co/models?search=Hunyuan-A52B-Instruct)" in hint
    assert [r.path.split("?")[0] for r in server.log] == [f"/api/models/{LARGE}"]  # the listing, nothing else
    assert server.file_bytes_sent() == 0 and cache_blobs() == []


def test_allowed_pickles_fetch_only_that_folder_and_no_python(server, releases):
    path = hub.resolve(LARGE, subfolder="Hunyuan-A52B-Instruct", allow_pickle_weights=True)
    files = releases[LARGE]
    names = ["config.json", "generation_config.json", "hy.tiktoken", "tokenizer_config.json", "pytorch_model.bin.index.json",
             "pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"]
    assert sent(server, LARGE) == expected(files, [f"Hunyuan-A52B-Instruct/{n}" for n in names])
    assert sorted(p.name for p in path.iterdir()) == sorted(names)


def test_allowed_pickles_load_end_to_end_from_the_hub(server, ref):
    """The hub fetches the pickle folder and the restricted reader gives the exact weights."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the reader announces itself with a ZooWarning
        model = load_model(f"{LARGE}/Hunyuan-A52B-Instruct", allow_pickle_weights=True, registry=Registry.discover())
    assert max_diff(model, ref) == 0.0


def test_legacy_7b_pickle_repo_is_refused(server):
    with pytest.raises(UnsafeInputError, match="Hunyuan-7B-Instruct-0124: holds only PyTorch pickle weights"):
        hub.resolve(LEGACY_7B)
    assert server.file_bytes_sent() == 0


def test_top_level_of_a_variant_repo_names_the_folders_and_the_cards(server):
    with pytest.raises(CheckpointNotFoundError) as err:
        cards.hf_snapshot(LARGE, where="somewhere.yaml::$.source.hf_repo", catalogue=Registry.discover().cards())
    message = str(err.value)
    assert message.startswith("somewhere.yaml::$.source.hf_repo: tencent/Tencent-Hunyuan-Large: no weights")
    for line in ("Hunyuan-A52B-Instruct/: 2 PyTorch pickle file(s)", "Hunyuan-A52B-Instruct-FP8/: 2 safetensors file(s)",
                 "Hunyuan-A52B-Pretrain/: 2 PyTorch pickle file(s)"):
        assert line in message
    assert "`zoo load tencent/Tencent-Hunyuan-Large/FOLDER`" in err.value.hint
    assert "Cards for other folders of tencent/Tencent-Hunyuan-Large: hunyuan-large-instruct" in err.value.hint
    assert server.file_bytes_sent() == 0


def test_tokenizer_only_repo_is_refused(server):
    with pytest.raises(CheckpointNotFoundError, match="tokenizer files only, no config.json and no weights"):
        hub.resolve(TOKENIZER_ONLY)
    assert server.file_bytes_sent() == 0


# -- A13B: misnamed index, cache first, refresh --------------------------------------------------------


def test_misnamed_index_fetches_its_safetensors_shards_and_loads(server, releases, ref):
    files = releases[A13B]
    path = hub.resolve(A13B)
    needed = ["config.json", "generation_config.json", "hy.tiktoken", "tokenizer_config.json", "pytorch_model.bin.index.json",
              "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    assert sent(server, A13B) == expected(files, needed)
    model = load_model(A13B, registry=Registry.discover())
    assert max_diff(model, ref) == 0.0


def test_cached_snapshot_loads_with_no_request_and_with_the_server_stopped(server, ref):
    first = hub.resolve(A13B)
    mark = server.mark()
    assert hub.resolve(A13B) == first
    assert server.since(mark) == []  # cache first: not even the listing was asked for
    server.stop()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fallback after a failed connection would warn
        model, info = load_model(A13B, return_info=True, registry=Registry.discover())
    assert info.path == first and max_diff(model, ref) == 0.0


def test_refresh_asks_the_hub_and_fetches_only_what_changed(server, releases):
    first = hub.resolve(A13B)
    mark = server.mark()
    assert hub.resolve(A13B, refresh=True) == first
    assert [r.path.split("?")[0] for r in server.since(mark)] == [f"/api/models/{A13B}"]  # asked, nothing to fetch
    mark = server.mark()
    with hub.options(refresh=True):  # as the CLI's --refresh: one command asks the hub once per folder
        assert hub.resolve(A13B) == first and hub.resolve(A13B) == first
    assert [r.path.split("?")[0] for r in server.since(mark)] == [f"/api/models/{A13B}"]
    changed = dict(releases[A13B], **{"generation_config.json": json.dumps({"eos_token_id": 127960})})
    server.add(A13B, changed)  # a new commit on main
    mark = server.mark()
    second = hub.resolve(A13B, refresh=True)
    assert second != first and (second / "generation_config.json").read_bytes() == changed["generation_config.json"].encode()
    assert sent(server, A13B, mark) == {"generation_config.json": len(changed["generation_config.json"])}  # blobs reused


def test_offline_uses_the_cache_only(server, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointNotFoundError, match="not a local folder and not in the Hugging Face cache") as err:
        hub.resolve(A13B)
    assert "HF_HUB_OFFLINE" in err.value.hint and server.log == []
    monkeypatch.delenv("HF_HUB_OFFLINE")
    path = hub.resolve(A13B)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    mark = server.mark()
    assert hub.resolve(A13B, refresh=True) == path and server.since(mark) == []


def test_incomplete_cache_is_completed_online_and_named_offline(server, monkeypatch):
    path = hub.resolve(A13B)
    shard = path / "model-00002-of-00002.safetensors"
    shard.unlink()  # an interrupted download
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointNotFoundError, match="incomplete: 1 needed file\\(s\\) missing, e.g. model-00002-of-00002.safetensors"):
        hub.resolve(A13B)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    mark = server.mark()
    assert hub.resolve(A13B) == path and shard.is_file()
    assert sent(server, A13B, mark) == {}  # the blob was still in the cache: relinked, not downloaded


# -- dry run -------------------------------------------------------------------------------------------


def test_dry_run_lists_files_and_bytes_and_sends_no_file_bytes(server, releases):
    files = releases[LARGE]
    result = hub.resolve(LARGE, subfolder="Hunyuan-A52B-Instruct-FP8", dry_run=True)
    assert isinstance(result, hub.DownloadPlan)
    want = {p: len(b) for p, b in files.items() if p.startswith("Hunyuan-A52B-Instruct-FP8/") and not p.endswith(".py")}
    assert {f.path: f.size for f in result.files} == want and result.fetch_bytes == sum(want.values())
    assert result.lines()[0].startswith(f"{LARGE}/Hunyuan-A52B-Instruct-FP8 (commit ")
    assert f"would download {len(want)} of {len(want)} file(s)" in result.lines()[0]
    assert server.file_bytes_sent() == 0 and not any("/resolve/" in r.path for r in server.log) and cache_blobs() == []
    folder_plan = resolve_source(f"{LARGE}/Hunyuan-A52B-Instruct-FP8", dry_run=True).download  # owner/name/folder
    assert {f.path: f.size for f in folder_plan.files} == want
    dry = plan(A13B, registry=Registry.discover())
    assert dry.report is None and {f.path for f in dry.download.files} >= {"model-00001-of-00002.safetensors"}
    assert server.file_bytes_sent() == 0


def test_cli_dry_run_then_load_then_refresh(server, zoo):
    env = dict(os.environ, ZOO_PROGRESS="0")
    dry = zoo("load", A13B, "--dry-run", env=env, check=0)
    assert f"{A13B}: dry run (nothing downloaded)" in dry.stdout
    assert "model-00002-of-00002.safetensors" in dry.stdout and "would download 7 of 7 file(s)" in dry.stdout
    assert server.file_bytes_sent() == 0
    refused = zoo("load", f"{LARGE}/Hunyuan-A52B-Instruct", env=env, check=1)
    lines = refused.stderr.splitlines()
    assert lines[0].startswith(f"zoo: error: {LARGE}/Hunyuan-A52B-Instruct: holds only PyTorch pickle weights")
    assert lines[1].startswith("hint: pass --allow-pickle-weights") and "Traceback" not in refused.stderr
    assert server.file_bytes_sent() == 0
    gen = zoo("generate", A13B, "-p", "hi", "--dry-run", env=env, check=0)
    assert "would download 7 of 7 file(s)" in gen.stdout and server.file_bytes_sent() == 0
    loaded = zoo("load", A13B, "--json", env=env, check=0)
    assert json.loads(loaded.stdout)["report"]["ok"] is True
    assert "zoo: downloading 6 file(s)" in loaded.stderr  # the 7th, the index, was read first to pick the shards
    mark = server.mark()
    refreshed = zoo("load", A13B, "--dry-run", "--refresh", "--json", env=env, check=0)
    assert json.loads(refreshed.stdout)["report"]["ok"] is True  # cached: the load plan from the headers
    assert [r.path.split("?")[0] for r in server.since(mark)] == [f"/api/models/{A13B}"]


# -- errors and selection rules ---------------------------------------------------------------------


def test_unknown_repo_and_revision_are_clear_errors(server):
    with pytest.raises(CheckpointNotFoundError, match="acme/absent: no such repository on the Hugging Face Hub"):
        hub.resolve("acme/absent")
    with pytest.raises(CheckpointNotFoundError, match="revision 'v9' does not exist"):
        hub.resolve(A13B, revision="v9")


def test_unreachable_hub_without_a_cache(server):
    server.stop()
    with pytest.raises(CheckpointNotFoundError, match="not in the Hugging Face cache .* could not be reached"):
        hub.resolve(A13B)


def test_select_rules_on_listings():
    listing = {"config.json": 10, "model.safetensors": 100, "pytorch_model.bin": 100, "modeling.py": 5, "tokenizer.json": 7,
               "sub/config.json": 1, "sub/model.safetensors": 9}
    chosen = hub.select(listing)
    assert chosen.files == ["config.json", "tokenizer.json", "model.safetensors"] and chosen.weights == "safetensors"
    index = {"weight_map": {"a": "../evil.safetensors"}}
    with pytest.raises(UnsafeInputError, match="points outside the checkpoint folder"):
        hub.select({"config.json": 1, "model.safetensors.index.json": 1, "model-1.safetensors": 1}, read_index=lambda p: index)
    with pytest.raises(CheckpointNotFoundError, match="shard 'model-2.safetensors' is not in the repository"):
        hub.select({"config.json": 1, "model.safetensors.index.json": 1, "model-1.safetensors": 1},
                   read_index=lambda p: {"weight_map": {"a": "model-2.safetensors"}})
    with pytest.raises(CheckpointError, match="mixes safetensors and pickle shards"):
        hub.select({"config.json": 1, "pytorch_model.bin.index.json": 1, "a.bin": 1, "b.safetensors": 1},
                   read_index=lambda p: {"weight_map": {"x": "a.bin", "y": "b.safetensors"}})
    with pytest.raises(CheckpointNotFoundError, match="no such folder"):
        hub.select(listing, "nope")
    assert hub.allow_patterns(["a[1]*.json"]) == ["a[[]1][*].json"]


def test_fake_hub_speaks_the_metadata_and_range_protocol(server, releases):
    """The server itself: HEAD metadata as huggingface_hub parses it, and a Range request (resumed downloads)."""
    import httpx2  # huggingface_hub's HTTP client
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    from hub_server import resolve_url

    path = "Hunyuan-A52B-Instruct-FP8/model-00001-of-00002.safetensors"
    data = releases[LARGE][path]
    meta = get_hf_file_metadata(hf_hub_url(LARGE, path, endpoint=server.url), token=False)
    assert meta.commit_hash == server.repos[LARGE].commit and meta.size == len(data)
    assert meta.etag == hashlib.sha256(data).hexdigest()  # LFS files: the sha256, as on the hub
    part = httpx2.get(resolve_url(server, LARGE, path), headers={"Range": "bytes=8-"})
    assert part.status_code == 206 and part.content == data[8:]
    assert part.headers["Content-Range"] == f"bytes 8-{len(data) - 1}/{len(data)}"


def test_a_snapshot_without_a_cached_listing_is_judged_by_its_folder(server, releases):
    """Snapshots written by older tools have no ``trees/`` listing: config + every indexed shard = complete."""
    commit = server.repos[A13B].commit
    storage = hub.storage_folder(A13B)
    snapshot = storage / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name, data in releases[A13B].items():
        (snapshot / name).write_bytes(data)
    (storage / "refs").mkdir()
    (storage / "refs" / "main").write_text(commit)
    assert hub.resolve(A13B) == snapshot and server.log == []  # complete by its own index: no request
    (snapshot / "model-00001-of-00002.safetensors").unlink()
    assert hub.resolve(A13B) == snapshot  # incomplete: asked the hub, fetched the missing shard only
    assert sent(server, A13B) == {"model-00001-of-00002.safetensors": len(releases[A13B]["model-00001-of-00002.safetensors"])}
