"""A restricted reader for PyTorch's zip checkpoints (``torch.save`` since PyTorch 1.6), no torch needed.

Some releases ship weights only as ``pytorch_model*.bin`` (Tencent's Hunyuan-A52B-Instruct bf16
folder, the legacy Hunyuan-7B). Such a file is a zip archive (entries stored uncompressed)::

    <prefix>/data.pkl        the state dict, pickled; tensors refer to storages by key
    <prefix>/data/<key>      raw bytes of one storage (numel elements of its dtype)
    <prefix>/byteorder       "little" or "big" (absent in old files: little)
    <prefix>/version         serialization version

``data.pkl`` is read by a :class:`pickle.Unpickler` whose ``find_class`` admits only what a
tensor state dict needs: ``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2`` /
``_rebuild_tensor_v3`` / ``_rebuild_parameter`` (``_with_state``), the ``torch.*Storage`` classes
and ``torch.<dtype>`` objects. Each admitted name maps to a function of this module that only
records shapes and offsets; nothing named by the file is ever imported or called. Any other global
is refused with :class:`UnsafeInputError` naming it and the file. ``torch.storage._load_from_bytes``
is refused too: it unpickles a nested pickle (the pre-1.6 format only). This is the approach of
llama.cpp's converter (``LazyUnpickler`` in ``examples/convert_legacy_llama.py``) and of PyTorch's
own ``torch.load(weights_only=True)`` (``torch/_weights_only_unpickler.py``); see docs/pickles.md.

Tensors become MLX arrays: each storage is a NumPy view of the memory-mapped file, each tensor a
strided view of its storage (offset, shape, strides checked against the storage's size) copied
once into MLX memory; nothing is read twice. bfloat16 goes through ``uint16`` and float8 stays raw
``uint8`` bytes, as ``mx.load`` returns it from safetensors.
"""

from __future__ import annotations

import io
import math
import mmap
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Dict, NamedTuple, Tuple

from .errors import CheckpointError, UnsafeInputError, ZooError
from .sanitize.tensors import Spec

MAX_PICKLE_BYTES = 256 * 1024 * 1024  # data.pkl of a 15 GB shard is well under 1 MB
_CONVERT = "download it again, or convert it to safetensors on a machine you trust"
# the pickle stream PyTorch < 1.6 (or _use_new_zipfile_serialization=False) starts with: its magic number
_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"

# dtype name -> (itemsize, NumPy dtype the bytes are read as, name of the MLX dtype of the result)
DTYPES = {
    "float32": (4, "f4", "float32"), "float64": (8, "f8", "float64"), "float16": (2, "f2", "float16"),
    "bfloat16": (2, "u2", "bfloat16"), "int64": (8, "i8", "int64"), "int32": (4, "i4", "int32"),
    "int16": (2, "i2", "int16"), "int8": (1, "i1", "int8"), "uint8": (1, "u1", "uint8"),
    "uint16": (2, "u2", "uint16"), "uint32": (4, "u4", "uint32"), "uint64": (8, "u8", "uint64"),
    "bool": (1, "u1", "bool"), "float8_e4m3": (1, "u1", "uint8"), "float8_e5m2": (1, "u1", "uint8"),
}
# torch's legacy typed storage classes (torch/storage.py) and their element types
_STORAGES = {
    "FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16", "BFloat16Storage": "bfloat16",
    "LongStorage": "int64", "IntStorage": "int32", "ShortStorage": "int16", "CharStorage": "int8",
    "ByteStorage": "uint8", "BoolStorage": "bool", "UntypedStorage": "uint8",
}
# torch.<name> dtype objects (used by _rebuild_tensor_v3) -> our names
_TORCH_DTYPES = {
    **{n: n for n in ("float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8",
                      "uint16", "uint32", "uint64", "bool")},
    "float": "float32", "double": "float64", "half": "float16", "long": "int64", "int": "int32", "short": "int16",
    "float8_e4m3fn": "float8_e4m3", "float8_e5m2": "float8_e5m2",
}


# Everything the unpickler hands back is a tuple (no ``__dict__``), so a BUILD opcode cannot change a
# tensor's shape or offset after it was checked, nor touch this module's functions.
class _StorageType(NamedTuple):
    dtype: str


class _DType(NamedTuple):
    name: str


class Storage(NamedTuple):
    key: str
    dtype: str
    numel: int


class TensorRef(NamedTuple):
    """A tensor as the pickle describes it: a strided view into a storage (no data read)."""

    storage: Storage
    offset: int  # in elements of ``dtype``
    shape: Tuple[int, ...]
    stride: Tuple[int, ...]
    dtype: str

    @property
    def spec(self) -> Spec:
        return Spec(self.shape, self.dtype)


class _Call:
    """An admitted function as the pickle sees it: callable, nothing else (no attributes to set)."""

    __slots__ = ("_fn",)

    def __init__(self, fn):
        object.__setattr__(self, "_fn", fn)

    def __call__(self, *args):
        return self._fn(*args)

    def __setattr__(self, name, value):
        raise _Bad("a pickle may not modify a rebuilding function")

    def __setstate__(self, state):
        raise _Bad("a pickle may not modify a rebuilding function")


class _Bad(ValueError):
    """Raised by the rebuild functions; the reader adds the file name."""


def _ints(value, what) -> Tuple[int, ...]:
    if not isinstance(value, tuple) or not all(type(v) is int for v in value):
        raise _Bad(f"{what} must be a tuple of integers, got {_short(value)}")
    return value


def _tensor(storage, offset, size, stride, dtype: str) -> TensorRef:
    if not isinstance(storage, Storage):
        raise _Bad(f"a tensor's storage must be a persistent storage reference, got {_short(storage)}")
    if type(offset) is not int or offset < 0:
        raise _Bad(f"storage offset must be a non-negative integer, got {_short(offset)}")
    size, stride = _ints(size, "size"), _ints(stride, "stride")
    if len(size) != len(stride):
        raise _Bad(f"size {list(size)} and stride {list(stride)} differ in length")
    if any(s < 0 for s in size) or any(s < 0 for s in stride):
        raise _Bad(f"negative size or stride (size {list(size)}, stride {list(stride)})")
    if len(size) > 64:
        raise _Bad(f"{len(size)} dimensions")
    if DTYPES[dtype][0] != DTYPES[storage.dtype][0] and storage.dtype != "uint8":
        raise _Bad(f"a {dtype} tensor cannot view a {storage.dtype} storage")
    check_bounds(storage, offset, size, stride, dtype)
    return TensorRef(storage, offset, size, stride, dtype)


def check_bounds(storage: Storage, offset: int, size, stride, dtype: str) -> None:
    """The last element a view touches must lie inside its storage (an empty view touches none)."""
    if 0 in size:
        return
    limit = storage.numel * DTYPES[storage.dtype][0] // DTYPES[dtype][0]
    if math.prod(size) > limit:  # a broadcast (stride 0) view: never needed for weights, and unbounded memory
        raise _Bad(f"a tensor of shape {list(size)} has more elements than storage {storage.key!r} ({limit})")
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= limit:
        raise _Bad(f"a tensor of shape {list(size)} (stride {list(stride)}, offset {offset}) reaches element {last} "
                   f"of storage {storage.key!r}, which holds {limit}")


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    dtype = storage.dtype if isinstance(storage, Storage) else None
    return _tensor(storage, storage_offset, size, stride, dtype or "float32")


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype, metadata=None):
    if not isinstance(dtype, _DType):
        raise _Bad(f"the dtype of a tensor must be a torch dtype, got {_short(dtype)}")
    return _tensor(storage, storage_offset, size, stride, dtype.name)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    if not isinstance(data, TensorRef):
        raise _Bad(f"a parameter must wrap a tensor, got {_short(data)}")
    return data


class _StateDict(dict):
    """What ``collections.OrderedDict`` becomes: a dict whose pickled state (``Module.state_dict()``'s
    ``_metadata`` of layer versions) is dropped, and with no ``__dict__`` for a pickle to write to."""

    __slots__ = ()

    def __setstate__(self, state):
        pass


def _ordered_dict(*args):
    if args and not (len(args) == 1 and isinstance(args[0], (list, tuple))):
        raise _Bad("OrderedDict takes at most one list of pairs")
    return _StateDict(*args)


_GLOBALS = {
    ("collections", "OrderedDict"): _Call(_ordered_dict),
    ("torch._utils", "_rebuild_tensor_v2"): _Call(_rebuild_tensor_v2),
    ("torch._utils", "_rebuild_tensor_v3"): _Call(_rebuild_tensor_v3),
    ("torch._utils", "_rebuild_parameter"): _Call(_rebuild_parameter),
    ("torch._utils", "_rebuild_parameter_with_state"): _Call(_rebuild_parameter),
    ("torch.storage", "UntypedStorage"): _StorageType("uint8"),
    **{("torch", name): _StorageType(dtype) for name, dtype in _STORAGES.items()},
    **{("torch", name): _DType(dtype) for name, dtype in _TORCH_DTYPES.items()},
}
ADMITTED = sorted(f"{m}.{n}" for m, n in _GLOBALS)


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, file: Path):
        super().__init__(io.BytesIO(data), encoding="utf-8")
        self.file = file
        self.storages: Dict[str, Storage] = {}

    def find_class(self, module, name):  # the only way a pickle names something to call
        target = _GLOBALS.get((module, name))
        if target is None:
            raise UnsafeInputError(
                f"{self.file}: the pickle asks for the Python global {module}.{name}, which zoo's restricted reader "
                "refuses (it admits only tensor-rebuilding globals: storages, _rebuild_tensor_v2/v3, OrderedDict)",
                hint="this is not a plain PyTorch state dict; do not load it unless you trust its source, "
                "and then convert it to safetensors with PyTorch",
            )
        return target

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise _Bad(f"unknown persistent id {_short(pid)} (expected ('storage', type, key, location, numel))")
        _, kind, key, _location, numel = pid
        if not isinstance(kind, _StorageType) or not isinstance(key, str) or type(numel) is not int or numel < 0:
            raise _Bad(f"malformed storage reference {_short(pid)}")
        seen = self.storages.get(key)
        if seen is not None and (seen.dtype, seen.numel) != (kind.dtype, numel):
            raise _Bad(f"storage {key!r} is described twice differently ({seen.dtype} x{seen.numel}, {kind.dtype} x{numel})")
        self.storages[key] = Storage(key, kind.dtype, numel)
        return self.storages[key]


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 100 else text[:97] + "..."


class TorchFile:
    """One ``torch.save`` zip archive: its tensor descriptions, and their data on request."""

    def __init__(self, path):
        self.path = Path(path)
        try:
            self._open()
        except ZooError:
            raise
        except _Bad as e:
            raise CheckpointError(f"{self.path}: not a valid PyTorch checkpoint: {e}", hint=_CONVERT) from None
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, pickle.UnpicklingError) as e:
            raise CheckpointError(f"{self.path}: not a valid PyTorch zip checkpoint ({type(e).__name__}: {e})", hint=_CONVERT) from None
        except OSError as e:
            raise CheckpointError(f"{self.path}: cannot read: {e.strerror or e}") from None
        except MemoryError:
            raise CheckpointError(f"{self.path}: the pickle needs more memory than a state dict can", hint=_CONVERT) from None
        except RecursionError:
            raise CheckpointError(f"{self.path}: the pickle is nested too deeply for a state dict", hint=_CONVERT) from None
        except Exception as e:  # noqa: BLE001 - a malformed pickle raises many builtin types; no foreign code ran
            raise CheckpointError(f"{self.path}: malformed PyTorch checkpoint ({type(e).__name__}: {_short(str(e))})", hint=_CONVERT) from None

    def _open(self) -> None:
        with open(self.path, "rb") as f:
            head = f.read(len(_LEGACY_MAGIC))
        if head == _LEGACY_MAGIC:
            raise CheckpointError(f"{self.path}: PyTorch's legacy (pre-1.6) pickle format, which zoo does not read",
                                  hint="re-save it with a current PyTorch (torch.save) or convert it to safetensors on a machine you trust")
        with zipfile.ZipFile(self.path) as z:
            infos = {i.filename: i for i in z.infolist()}
            pkls = [n for n in infos if n.count("/") == 1 and n.endswith("/data.pkl")]
            if len(pkls) != 1:
                raise _Bad(f"expected one <archive>/data.pkl entry, found {len(pkls)}")
            self.prefix = pkls[0][: -len("data.pkl")]
            order_info = infos.get(self.prefix + "byteorder")
            if order_info is not None and order_info.file_size > 16:
                raise _Bad(f"the byteorder entry is {order_info.file_size} bytes long")
            order = z.read(order_info).decode("ascii", "replace") if order_info is not None else "little"
            if order not in ("little", "big"):
                raise _Bad(f"byteorder is {order!r}, expected 'little' or 'big'")
            self.byteorder = order
            if infos[pkls[0]].file_size > MAX_PICKLE_BYTES:
                raise _Bad(f"data.pkl is {infos[pkls[0]].file_size} bytes; a state dict needs far less")
            unpickler = _Unpickler(z.read(infos[pkls[0]]), self.path)
            try:
                obj = unpickler.load()
            except _Bad:
                raise
            except TypeError as e:  # an admitted function called with the wrong arguments
                raise _Bad(f"a tensor-rebuilding call has the wrong arguments ({e})") from None
            self.tensors_refs = self._state_dict(obj)
            self.offsets = {key: self._data_offset(z, infos, s) for key, s in unpickler.storages.items()}

    def _state_dict(self, obj) -> Dict[str, TensorRef]:
        if not isinstance(obj, dict):
            raise _Bad(f"the pickle holds a {type(obj).__name__}, not a state dict (a mapping of names to tensors)")
        for name, value in obj.items():
            if not isinstance(name, str) or not isinstance(value, TensorRef):
                raise _Bad(f"entry {_short(name)} holds {type(value).__name__}, not a tensor; a weights file holds only tensors")
        return dict(obj)

    def _data_offset(self, z: zipfile.ZipFile, infos, storage: Storage) -> int:
        name = f"{self.prefix}data/{storage.key}"
        info = infos.get(name)
        if info is None:
            raise _Bad(f"storage {storage.key!r} has no entry {name!r} in the archive")
        if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
            raise _Bad(f"entry {name!r} is compressed or encrypted; torch.save stores storages uncompressed")
        need = storage.numel * DTYPES[storage.dtype][0]
        if need > info.file_size:
            raise _Bad(f"storage {storage.key!r} claims {need} bytes ({storage.numel} x {storage.dtype}) but its entry holds {info.file_size}")
        z.fp.seek(info.header_offset)
        local = z.fp.read(30)
        if len(local) != 30 or local[:4] != b"PK\x03\x04":
            raise _Bad(f"entry {name!r}: bad local file header")
        n_name, n_extra = struct.unpack("<HH", local[26:30])
        start = info.header_offset + 30 + n_name + n_extra
        if start + need > self.path.stat().st_size:
            raise _Bad(f"entry {name!r} ends past the end of the file (truncated?)")
        return start

    def specs(self) -> Dict[str, Spec]:
        """Name → shape and dtype (float8 named as in safetensors headers); reads no tensor data."""
        return {name: t.spec for name, t in self.tensors_refs.items()}

    def numpy(self, name: str, buffer):
        """The tensor ``name`` as a NumPy array over ``buffer`` (the file's bytes), raw dtype (bf16 as uint16)."""
        import numpy as np

        t = self.tensors_refs[name]
        itemsize, code, _ = DTYPES[t.dtype]
        dt = np.dtype(("<" if self.byteorder == "little" else ">") + code if itemsize > 1 else code)
        count = math.prod(t.shape)
        if count == 0:
            return np.zeros(t.shape, dt.newbyteorder("="))
        s = t.storage
        nbytes = s.numel * DTYPES[s.dtype][0]
        check_bounds(s, t.offset, t.shape, t.stride, t.dtype)
        if self.offsets[s.key] + nbytes > len(buffer):
            raise ValueError(f"storage {s.key!r} ends past the end of the file")
        flat = np.frombuffer(buffer, dtype=dt, count=nbytes // itemsize, offset=self.offsets[s.key])
        view = np.lib.stride_tricks.as_strided(flat[t.offset:], shape=t.shape, strides=tuple(st * itemsize for st in t.stride),
                                               writeable=False)
        if self.byteorder == "big" and itemsize > 1:
            view = view.astype(dt.newbyteorder("="))
        return view

    def tensors(self) -> dict:
        """Every tensor as an ``mx.array``, each copied once from the memory-mapped file."""
        import mlx.core as mx
        import numpy as np

        out = {}
        try:
            buffer = np.memmap(self.path, dtype=np.uint8, mode="r") if self.path.stat().st_size else b""
            for name, t in self.tensors_refs.items():
                view = self.numpy(name, buffer)
                raw = "uint16" if t.dtype == "bfloat16" else DTYPES[t.dtype][2]  # mx.array would make float64 float32
                if t.dtype == "bool":
                    view = view != 0
                elif not view.flags.c_contiguous:  # a transposed or strided view: one copy of this tensor only
                    view = view.copy(order="C")
                arr = mx.array(view, dtype=getattr(mx, raw.replace("bool", "bool_")))
                out[name] = arr.view(mx.bfloat16) if t.dtype == "bfloat16" else arr
        except OSError as e:
            raise CheckpointError(f"{self.path}: reading tensor data failed: {e.strerror or e}", hint=_CONVERT) from None
        except ValueError as e:  # the file shrank since it was opened
            raise CheckpointError(f"{self.path}: reading tensor data failed: {e}", hint=_CONVERT) from None
        return out


def read_specs(path) -> Dict[str, Spec]:
    return TorchFile(path).specs()


def read_tensors(path) -> dict:
    return TorchFile(path).tensors()


__all__ = ["TorchFile", "TensorRef", "read_specs", "read_tensors", "ADMITTED", "DTYPES"]
