"""Hostile and broken PyTorch checkpoints: every one raises a ZooError, none runs anything.

The attacks are real pickles: reducers for ``os.system``/``posix.system``, ``builtins.eval``,
``subprocess``, nested pickles (``pickle.loads``, ``torch.load``, ``torch.storage._load_from_bytes``),
``__reduce__`` tricks in every pickle protocol, BUILD opcodes aimed at a checked tensor, and
tensor descriptions that reach outside their storage. Each command would create a marker file; the
tests assert it was never written. Broken files (truncated, random, mutated by hypothesis) must
raise a ZooError and nothing else.
"""

from __future__ import annotations

import _compat_pickle
import collections
import copyreg
import io
import os
import pickle
import random
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from zoo_registry.errors import CheckpointError, UnsafeInputError, ZooError
from zoo_registry.torch_pickle import TorchFile

import torch  # to make real pickles that name torch's own functions


def read_all(path):
    f = TorchFile(path)
    f.specs()
    return f.tensors()


def write_archive(path: Path, data_pkl: bytes, storages=None, prefix="archive", compress=zipfile.ZIP_STORED, extra=(), byteorder="little"):
    """A zip laid out as torch.save lays it out, around a hand-made data.pkl."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr(f"{prefix}/data.pkl", data_pkl)
        z.writestr(f"{prefix}/byteorder", byteorder)
        for key, raw in (storages or {}).items():
            z.writestr(zipfile.ZipInfo(f"{prefix}/data/{key}"), raw, compress_type=compress)
        z.writestr(f"{prefix}/version", "3\n")
        for name, raw in extra:
            z.writestr(name, raw)
    return path


# -- code-execution attempts ------------------------------------------------------------------------


class Reducer:
    """Pickles as ``func(*args)``, the way any __reduce__-based exploit does."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def marker_cmd(marker: Path) -> str:
    return f"touch {marker}"


def attacks(marker: Path):
    cmd = marker_cmd(marker)
    inner = pickle.dumps(Reducer(os.system, cmd), protocol=2)
    yield "posix.system", Reducer(os.system, cmd)
    yield "builtins.eval", Reducer(eval, f"__import__('os').system({cmd!r})")
    yield "builtins.exec", Reducer(exec, f"import os; os.system({cmd!r})")
    yield "subprocess.Popen", Reducer(subprocess.Popen, ["touch", str(marker)])
    yield "subprocess.check_call", Reducer(subprocess.check_call, ["touch", str(marker)])
    yield "_pickle.loads", Reducer(pickle.loads, inner)
    yield "torch.serialization.load", Reducer(torch.load, io.BytesIO(inner))
    yield "torch.storage._load_from_bytes", Reducer(torch.storage._load_from_bytes, inner)
    yield "builtins.getattr", Reducer(getattr, Reducer(__import__, "os"), "system")
    yield "builtins.__import__", Reducer(__import__, "os")
    yield "torch._utils._rebuild_tensor", Reducer(torch._utils._rebuild_tensor, None, 0, (1,), (1,))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_reducers_are_refused_by_name(tmp_path, protocol):
    marker = tmp_path / "PWNED"
    for expected, payload in attacks(marker):
        if protocol < 3:  # pickle writes Python 2 names for protocols 0-2; the message names what the file says
            module, name = expected.rsplit(".", 1)
            module, name = _compat_pickle.REVERSE_NAME_MAPPING.get((module, name), (module, name))
            expected = f"{_compat_pickle.REVERSE_IMPORT_MAPPING.get(module, module)}.{name}"
        for shape in ({"w": payload}, collections.OrderedDict(w=payload), payload, [payload]):
            path = write_archive(tmp_path / "evil.bin", pickle.dumps(shape, protocol=protocol))
            with pytest.raises(UnsafeInputError) as e:
                read_all(path)
            assert str(e.value).startswith(f"{path}: the pickle asks for the Python global {expected},"), str(e.value)
            assert not marker.exists()


def test_os_system_spelled_with_the_os_module(tmp_path):
    marker = tmp_path / "PWNED"
    data = b"\x80\x02cos\nsystem\nX" + len(marker_cmd(marker)).to_bytes(4, "little") + marker_cmd(marker).encode() + b"\x85R."
    path = write_archive(tmp_path / "evil.bin", data)
    with pytest.raises(UnsafeInputError, match=r"the Python global os.system, which zoo's restricted reader refuses"):
        read_all(path)
    assert not marker.exists()


def test_extension_registry_goes_through_the_same_gate(tmp_path):
    marker = tmp_path / "PWNED"
    copyreg.add_extension("posix", "system", 0xBEEF)
    try:
        cmd = marker_cmd(marker).encode()
        data = b"\x80\x02\x83\xef\xbeX" + len(cmd).to_bytes(4, "little") + cmd + b"\x85R."  # EXT2 0xBEEF
        path = write_archive(tmp_path / "evil.bin", data)
        with pytest.raises(UnsafeInputError, match="posix.system"):
            read_all(path)
    finally:
        copyreg.remove_extension("posix", "system", 0xBEEF)
    assert not marker.exists()


def test_evil_tensor_inside_a_real_checkpoint(tmp_path):
    """A genuine torch.save file whose state dict also holds a reducer: refused before any tensor is read."""
    marker = tmp_path / "PWNED"
    good = tmp_path / "good.bin"
    torch.save({"w": torch.ones(2)}, good)
    with zipfile.ZipFile(good) as z:
        entries = {i.filename: z.read(i) for i in z.infolist()}
    evil = pickle.dumps({"w": Reducer(os.system, marker_cmd(marker))}, protocol=2)
    with zipfile.ZipFile(tmp_path / "evil.bin", "w") as z:
        for name, raw in entries.items():
            z.writestr(name, evil if name.endswith("data.pkl") else raw)
    with pytest.raises(UnsafeInputError, match="posix.system"):
        read_all(tmp_path / "evil.bin")
    assert not marker.exists()


def test_cli_prints_one_message_and_runs_nothing(tmp_path):
    marker = tmp_path / "PWNED"
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama", "hidden_size": 8, "num_hidden_layers": 1, "intermediate_size": 8, '
                                        '"num_attention_heads": 2, "rms_norm_eps": 1e-5, "vocab_size": 16}')
    write_archive(folder / "pytorch_model.bin", pickle.dumps({"w": Reducer(os.system, marker_cmd(marker))}, protocol=2))
    for cmd in (["convert", str(tmp_path / "out")],):  # loads like `zoo load`, then would write
        proc = subprocess.run([sys.executable, "-m", "zoo_registry.cli.main", cmd[0], str(folder), *cmd[1:], "--allow-pickle-weights"],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode != 0
        assert "Traceback" not in proc.stderr
        errors = [line for line in proc.stderr.splitlines() if line.startswith("zoo: error:")]
        assert len(errors) == 1 and "posix.system" in errors[0], proc.stderr
    assert not marker.exists() and not (tmp_path / "out").exists()


# -- tensor descriptions that lie ----------------------------------------------------------------


class FakeStorage:
    def __init__(self, key="0", kind=None, numel=4):
        self.key, self.kind, self.numel = key, kind or torch.FloatStorage, numel


class FakeTensor:
    """Pickles like a tensor (``_rebuild_tensor_v2``/``v3``), with whatever arguments a test wants."""

    def __init__(self, storage, offset=0, size=(4,), stride=(1,), v3_dtype=None, state=None, func=None):
        self.storage, self.offset, self.size, self.stride, self.v3_dtype, self.state = storage, offset, size, stride, v3_dtype, state
        self.func = func

    def __reduce__(self):
        hooks = collections.OrderedDict()
        if self.v3_dtype is not None:
            out = (torch._utils._rebuild_tensor_v3, (self.storage, self.offset, self.size, self.stride, False, hooks, self.v3_dtype))
        else:
            out = (self.func or torch._utils._rebuild_tensor_v2, (self.storage, self.offset, self.size, self.stride, False, hooks))
        return out if self.state is None else out + (self.state,)


class TorchLikePickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, FakeStorage):
            return ("storage", obj.kind, obj.key, "cpu", obj.numel)
        if isinstance(obj, tuple) and obj and obj[0] == "raw-pid":
            return obj[1]
        return None


def crafted(path: Path, state_dict, storages=None, **kw) -> Path:
    buf = io.BytesIO()
    TorchLikePickler(buf, protocol=2).dump(state_dict)
    return write_archive(path, buf.getvalue(), {"0": b"\0" * 16} if storages is None else storages, **kw)


def test_crafted_valid_tensor_reads(tmp_path):
    """The crafting helper itself makes files the reader accepts (so the cases below fail for their own reason)."""
    got = read_all(crafted(tmp_path / "ok.bin", {"w": FakeTensor(FakeStorage()), "v3": FakeTensor(FakeStorage("1", torch.UntypedStorage, 8), size=(4,), v3_dtype=torch.int16)},
                           {"0": b"\0" * 16, "1": b"\1\0" * 4}))
    assert got["w"].tolist() == [0.0] * 4 and got["v3"].tolist() == [1] * 4


def test_big_endian_files(tmp_path):
    """torch.save on a big-endian machine writes byteorder 'big' and big-endian storages."""
    import numpy as np

    values = (np.arange(6) * 1.5).astype(">f4")
    sd = {"w": FakeTensor(FakeStorage(numel=6), size=(2, 3), stride=(1, 2)),
          "h": FakeTensor(FakeStorage("1", torch.HalfStorage, 2), size=(2,)), "b": FakeTensor(FakeStorage("2", torch.BFloat16Storage, 1), size=(), stride=())}
    storages = {"0": values.tobytes(), "1": np.array([0.5, -2.0], ">f2").tobytes(), "2": (0x3FC0).to_bytes(2, "big")}  # bf16 1.5
    got = read_all(crafted(tmp_path / "be.bin", sd, storages, byteorder="big"))
    assert got["w"].tolist() == values.astype("<f4").reshape(3, 2).T.tolist()
    assert got["h"].tolist() == [0.5, -2.0] and got["b"].item() == 1.5
    with pytest.raises(CheckpointError, match="byteorder is 'middle'"):
        read_all(crafted(tmp_path / "odd.bin", sd, storages, byteorder="middle"))


BAD_TENSORS = {
    "storage bigger than its entry": (FakeTensor(FakeStorage(numel=10**12), size=(2,)), "claims 4000000000000 bytes .* but its entry holds 16"),
    "view past the storage": (FakeTensor(FakeStorage(), size=(2,), stride=(5,)), "reaches element 5 of storage '0', which holds 4"),
    "more elements than the storage": (FakeTensor(FakeStorage(), size=(100,)), r"shape \[100\] has more elements than storage '0' \(4\)"),
    "offset past the storage": (FakeTensor(FakeStorage(), offset=4, size=(1,)), "reaches element 4"),
    "negative stride": (FakeTensor(FakeStorage(), size=(2,), stride=(-1,)), "negative size or stride"),
    "negative offset": (FakeTensor(FakeStorage(), offset=-2, size=(1,)), "storage offset must be a non-negative integer"),
    "negative size": (FakeTensor(FakeStorage(), size=(-3,)), "negative size or stride"),
    "overflowing stride": (FakeTensor(FakeStorage(), size=(2, 2), stride=(2**70, 1)), "reaches element 1180591620717411303425 of storage '0', which holds 4"),
    "overflowing size": (FakeTensor(FakeStorage(), size=(2**64 + 1,), stride=(0,)), "more elements than storage '0'"),
    "broadcast bomb": (FakeTensor(FakeStorage(), size=(2**20, 2**20), stride=(0, 0)), "more elements than storage '0'"),
    "float size": (FakeTensor(FakeStorage(), size=(2.0,)), "size must be a tuple of integers"),
    "size and stride lengths": (FakeTensor(FakeStorage(), size=(2, 2), stride=(1,)), "differ in length"),
    "too many dimensions": (FakeTensor(FakeStorage(), size=(1,) * 65, stride=(1,) * 65), "65 dimensions"),
    "not a storage": (FakeTensor("0", size=(1,)), "storage must be a persistent storage reference"),
    "missing data entry": (FakeTensor(FakeStorage("7"), size=(1,)), "storage '7' has no entry 'archive/data/7'"),
    "path-like key": (FakeTensor(FakeStorage("../../etc/passwd"), size=(1,)), "has no entry 'archive/data/../../etc/passwd'"),
    "dtype wider than storage": (FakeTensor(FakeStorage(kind=torch.HalfStorage, numel=8), size=(2,), v3_dtype=torch.float32),
                                 "float32 tensor cannot view a float16 storage"),
    "v3 without a dtype": (FakeTensor(FakeStorage(), size=(1,), v3_dtype="float32"), "the dtype of a tensor must be a torch dtype"),
    "BUILD on a checked tensor": (FakeTensor(FakeStorage(), size=(1,), state={"shape": (10**9,)}), "malformed PyTorch checkpoint"),
    "BUILD on a rebuild function": (FakeTensor(FakeStorage(), size=(1,), state=(None, {"__defaults__": (1,)})), "malformed PyTorch checkpoint"),
    "parameter of a non-tensor": (FakeTensor(3, func=torch._utils._rebuild_parameter), "wrong arguments|must wrap a tensor"),
}


@pytest.mark.parametrize("case", sorted(BAD_TENSORS))
def test_lying_tensor_descriptions(tmp_path, case):
    tensor, message = BAD_TENSORS[case]
    path = crafted(tmp_path / "bad.bin", {"w": tensor})
    with pytest.raises(CheckpointError, match=message):
        read_all(path)


def test_the_same_storage_described_twice_differently(tmp_path):
    sd = {"a": FakeTensor(FakeStorage(numel=4), size=(1,)), "b": FakeTensor(FakeStorage(numel=2), size=(1,))}
    with pytest.raises(CheckpointError, match="storage '0' is described twice differently"):
        read_all(crafted(tmp_path / "bad.bin", sd))


@pytest.mark.parametrize("pid, message", [
    (("raw-pid", ("module", "posix", "system")), "unknown persistent id"),
    (("raw-pid", ("storage", "FloatStorage", "0", "cpu", 4)), "malformed storage reference"),
    (("raw-pid", ("storage", torch.FloatStorage, 0, "cpu", 4)), "malformed storage reference"),
    (("raw-pid", ("storage", torch.FloatStorage, "0", "cpu", -1)), "malformed storage reference"),
])
def test_bad_persistent_ids(tmp_path, pid, message):
    with pytest.raises(CheckpointError, match=message):
        read_all(crafted(tmp_path / "bad.bin", {"w": FakeTensor(pid, size=(1,))}))


@pytest.mark.parametrize("state_dict, message", [
    ([FakeTensor(FakeStorage(), size=(1,))], "holds a list, not a state dict"),
    ({"w": FakeTensor(FakeStorage(), size=(1,)), "epoch": 3}, "entry 'epoch' holds int, not a tensor"),
    ({"model": {"w": FakeTensor(FakeStorage(), size=(1,))}}, "entry 'model' holds dict, not a tensor"),
    ({1: FakeTensor(FakeStorage(), size=(1,))}, "entry 1 holds"),
])
def test_not_a_state_dict(tmp_path, state_dict, message):
    with pytest.raises(CheckpointError, match=message):
        read_all(crafted(tmp_path / "bad.bin", state_dict))


# -- broken archives -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> bytes:
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    path = tmp_path_factory.mktemp("valid") / "w.bin"
    torch.save({"a": base, "t": base.t(), "h": base.half()[1:], "b": base.bfloat16(), "i": torch.tensor(7)}, path)
    return path.read_bytes()


def test_compressed_storage_is_refused(tmp_path):
    path = crafted(tmp_path / "z.bin", {"w": FakeTensor(FakeStorage())}, compress=zipfile.ZIP_DEFLATED)
    with pytest.raises(CheckpointError, match="is compressed or encrypted"):
        read_all(path)


def test_two_archives_in_one_zip(tmp_path):
    path = crafted(tmp_path / "two.bin", {"w": FakeTensor(FakeStorage())}, extra=[("other/data.pkl", b"\x80\x02}.")])
    with pytest.raises(CheckpointError, match="expected one <archive>/data.pkl entry, found 2"):
        read_all(path)


def test_legacy_format_is_named(tmp_path):
    path = tmp_path / "old.bin"
    torch.save({"w": torch.ones(2)}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match=r"legacy \(pre-1.6\) pickle format"):
        read_all(path)


def test_a_bare_pickle_is_not_a_checkpoint(tmp_path):
    marker = tmp_path / "PWNED"
    path = tmp_path / "bare.bin"
    path.write_bytes(pickle.dumps(Reducer(os.system, marker_cmd(marker))))
    with pytest.raises(CheckpointError, match="not a valid PyTorch zip checkpoint"):
        read_all(path)
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"", b"PK", b"PK\x03\x04" + b"\0" * 40, bytes(range(256)) * 4])
def test_junk_files(tmp_path, content):
    path = tmp_path / "junk.bin"
    path.write_bytes(content)
    with pytest.raises(CheckpointError):
        read_all(path)


def test_random_bytes(tmp_path):
    rng = random.Random(1234)
    path = tmp_path / "random.bin"
    for n in (1, 17, 300, 5000):
        path.write_bytes(bytes(rng.getrandbits(8) for _ in range(n)))
        with pytest.raises(CheckpointError):
            read_all(path)


def test_every_truncation(tmp_path, valid):
    path = tmp_path / "cut.bin"
    for n in range(0, len(valid), 7):
        path.write_bytes(valid[:n])
        with pytest.raises(ZooError):
            read_all(path)


def check_mutant(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.bin"
        path.write_bytes(data)
        try:
            out = read_all(path)
        except ZooError:
            return
        for v in out.values():  # what loads must be real arrays of the shapes the pickle described
            v.tolist()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_mutations_of_a_valid_file(valid, data):
    blob = bytearray(valid)
    pkl = valid.find(b"\x80\x02")  # mutate the pickle stream more often than the rest
    for _ in range(data.draw(st.integers(1, 6))):
        where = data.draw(st.one_of(st.integers(pkl, pkl + 700), st.integers(0, len(blob) - 1)))
        where = min(where, len(blob) - 1)
        op = data.draw(st.sampled_from(["set", "insert", "delete"]))
        byte = data.draw(st.integers(0, 255))
        if op == "set":
            blob[where] = byte
        elif op == "insert":
            blob.insert(where, byte)
        else:
            del blob[where]
    check_mutant(bytes(blob))
