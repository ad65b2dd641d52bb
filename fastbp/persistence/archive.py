"""The file format's container: a ``.npz`` (zip) of plain NumPy arrays and one JSON header,
written atomically and read without pickle, with every member checked before it is used."""

import math
import os
import secrets
import zipfile

import numpy as np



HEADER_KEY = "__fastbp__"


_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


# dtype kinds an array entry may have: bool, integers, floats, unicode strings.
_ARRAY_KINDS = {"b": "bool", "i": "int", "u": "uint", "f": "float", "U": "str"}


_NUMPY_SCALAR_KINDS = {"b", "i", "u", "f"}


_NPY_HEADER_ALLOWANCE = 1 << 16  # an .npy member's header: at most this much beyond its data


_MAX_JSON_DEPTH = 32


_MAX_INT = 2**63 - 1  # the fitted counters are int64-sized


# ----------------------------------------------------------------------
# JSON values
# ----------------------------------------------------------------------
def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))



def _is_float(v):
    return isinstance(v, (float, np.floating)) and not isinstance(v, bool)



def _is_number(v):
    return _is_int(v) or _is_float(v)



class _Unstorable(TypeError):
    """A value that has no safe JSON / array form."""


def _encode_float(value):
    value = float(value)
    if math.isnan(value):
        return {"$float": "nan"}
    if math.isinf(value):
        return {"$float": "inf" if value > 0 else "-inf"}
    return value


def _encode_value(value, allow_ndarray=False):
    """JSON form of a plain value (None, bool, int, float, str, NumPy scalar, tuple, list, dict)."""
    if value is None or type(value) in (bool, str):
        return value
    if isinstance(value, np.generic):  # first: np.float64 is a float, np.bool_ is not a bool
        if value.dtype.kind not in _NUMPY_SCALAR_KINDS or value.dtype.itemsize > 8:
            raise _Unstorable(f"a NumPy scalar of dtype {value.dtype}")
        if value.dtype.kind == "f":
            inner = _encode_float(value)
        else:
            inner = value.item()
        return {"$numpy": value.dtype.str, "value": inner}
    if isinstance(value, (bool, str)):
        return bool(value) if isinstance(value, bool) else str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _encode_float(value)
    if isinstance(value, list):
        return [_encode_value(v, allow_ndarray) for v in value]
    if isinstance(value, tuple):
        return {"$tuple": [_encode_value(v, allow_ndarray) for v in value]}
    if isinstance(value, dict):
        return {"$dict": [[_encode_value(k), _encode_value(v, allow_ndarray)] for k, v in value.items()]}
    if allow_ndarray and isinstance(value, np.ndarray):
        if value.dtype.kind not in _ARRAY_KINDS or value.ndim > 2 or value.size > 4096:
            raise _Unstorable(f"an array of dtype {value.dtype} and shape {value.shape}")
        data = [_encode_value(v) for v in value.ravel().tolist()]
        return {"$ndarray": value.dtype.str, "shape": list(value.shape), "data": data}
    raise _Unstorable(f"a {type(value).__module__}.{type(value).__qualname__} object")


class _Decoder:
    """Rebuilds the JSON values; resolves ``{"$array": name}`` to the archive's arrays."""

    def __init__(self, arrays):
        self.arrays = arrays
        self.used = set()

    def array(self, name):
        if not isinstance(name, str) or name not in self.arrays:
            raise ValueError(f"refers to the array {name!r}, which the manifest does not list")
        if name in self.used:
            raise ValueError(f"refers to the array {name!r} twice")
        self.used.add(name)
        return self.arrays[name]

    def __call__(self, value):
        if value is None or isinstance(value, (bool, str, int, float)):
            return value
        if isinstance(value, list):
            return [self(v) for v in value]
        if not isinstance(value, dict) or not value:
            raise ValueError(f"holds an unexpected JSON value {value!r}")
        tag = next(iter(value))
        if len(value) == 1 and tag == "$float":
            names = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
            if value[tag] not in names:
                raise ValueError(f"holds an unknown float {value[tag]!r}")
            return names[value[tag]]
        if len(value) == 1 and tag == "$tuple" and isinstance(value[tag], list):
            return tuple(self(v) for v in value[tag])
        if len(value) == 1 and tag == "$dict" and isinstance(value[tag], list):
            items = value[tag]
            if not all(isinstance(item, list) and len(item) == 2 for item in items):
                raise ValueError("holds a malformed $dict")
            return {self._key(k): self(v) for k, v in items}
        if len(value) == 1 and tag == "$array":
            return self.array(value[tag])
        if set(value) == {"$numpy", "value"}:
            dtype = _plain_dtype(value["$numpy"], _NUMPY_SCALAR_KINDS)
            inner = self(value["value"])
            ok = {
                "b": isinstance(inner, bool),
                "i": _is_int(inner), "u": _is_int(inner),
                "f": _is_number(inner),
            }[dtype.kind]
            if not ok:
                raise ValueError(f"holds a malformed NumPy scalar {value!r}")
            try:
                return dtype.type(inner)
            except OverflowError:
                raise ValueError(f"holds a NumPy scalar out of range {value!r}") from None
        if set(value) == {"$ndarray", "shape", "data"}:
            dtype = _plain_dtype(value["$ndarray"], set(_ARRAY_KINDS))
            shape = value["shape"]
            data = self(value["data"])
            if (not isinstance(shape, list) or len(shape) > 2
                    or not all(type(n) is int and n >= 0 for n in shape)
                    or not isinstance(data, list) or len(data) != math.prod(shape)):
                raise ValueError(f"holds a malformed $ndarray {value!r}")
            return np.array(data, dtype=dtype).reshape(shape)
        raise ValueError(f"holds an unknown JSON object {value!r}")

    def _key(self, key):
        key = self(key)
        if isinstance(key, (list, dict, np.ndarray)):
            raise ValueError(f"holds an unhashable $dict key {key!r}")
        return key


def _plain_dtype(text, kinds):
    try:
        dtype = np.dtype(text) if isinstance(text, str) else None
    except (TypeError, ValueError):
        dtype = None
    if dtype is None or dtype.kind not in kinds or dtype.hasobject or dtype.fields is not None:
        raise ValueError(f"holds a dtype {text!r} that is not allowed")
    return dtype


class _Writer:
    def __init__(self):
        self.arrays = {}

    def add(self, name, array):
        array = np.asarray(array)
        if array.dtype.kind not in _ARRAY_KINDS or array.dtype.hasobject:
            raise _Unstorable(f"an array of dtype {array.dtype}")
        self.arrays[name] = np.ascontiguousarray(array)
        return {"$array": name}

    def array_list(self, name, arrays):
        return [self.add(f"{name}.{i}", a) for i, a in enumerate(arrays)]

    def curve(self, name, values):
        """A list of floats: one float64 array when they are all Python floats, else tagged JSON."""
        if values is None:
            return None
        if all(type(v) is float for v in values):
            return {"$tuple": ["floats", self.add(name, np.array(values, dtype=np.float64))]}
        return _encode_value(list(values))


def _fspath(path):
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}.")
    path = os.fspath(path)
    if not isinstance(path, str):
        raise TypeError("path must be a text path (str), not bytes.")
    return path


def _write_atomically(path, arrays):
    directory, base = os.path.split(os.path.abspath(path))
    tmp = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
    # O_EXCL: never follow or reuse an existing file; mode 0o666 minus the umask, like open()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)  # a file object: numpy appends no ".npz"
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable (POSIX)
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


# ----------------------------------------------------------------------
# load
# ----------------------------------------------------------------------
class _Reader:
    def __init__(self, path):
        self.path = path

    def error(self, message):
        return ValueError(f"cannot load {self.path!r} as a fastbp model: {message}")


def _read_archive(path, reader):
    """Open ``path`` as an .npz archive: (NpzFile, open file)."""
    try:
        f = open(path, "rb")
    except IsADirectoryError:
        raise reader.error("it is a directory, not a file.") from None
    try:
        magic = f.read(6)
        if not magic:
            raise reader.error("the file is empty.")
        if magic[:1] == b"\x80" and magic[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
            raise reader.error(
                "it is a pickle file, not a fastbp .npz model (fastbp.load never unpickles: pickles can run code)."
            )
        if magic == b"\x93NUMPY":
            raise reader.error("it is a single .npy array, not an .npz archive written by fastbp.save.")
        if magic[:4] != b"PK\x03\x04":
            raise reader.error("it is not a zip (.npz) archive.")
        f.seek(0)
        try:
            npz = np.load(f, allow_pickle=False)
        except (zipfile.BadZipFile, EOFError, ValueError, OSError) as exc:
            raise reader.error(f"the zip (.npz) archive is truncated or corrupt ({exc}).") from None
        if not isinstance(npz, np.lib.npyio.NpzFile):  # pragma: no cover - the magic said zip
            raise reader.error("it is not an .npz archive.")
        return npz, f
    except BaseException:
        f.close()
        raise


def _read_member(npz, name, reader):
    try:
        return npz[name]
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "bject arrays" in str(exc):
            raise reader.error(
                f"the array {name!r} holds Python objects (dtype=object); fastbp.load never unpickles."
            ) from None
        raise reader.error(f"the array {name!r} is corrupt ({exc}).") from None
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as exc:
        raise reader.error(f"the array {name!r} is truncated or corrupt ({exc}).") from None


def _json_depth(document):
    """Nesting depth of a parsed JSON document (iteratively: no recursion limit to hit)."""
    deepest, stack = 0, [(document, 1)]
    while stack:
        value, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    return deepest


def _member_header(npz, name, reader):
    """(dtype, shape) from an .npy member's header, read before any of its data."""
    try:
        with npz.zip.open(name + ".npy") as fp:
            version = np.lib.format.read_magic(fp)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
    except (ValueError, zipfile.BadZipFile, EOFError, OSError, KeyError) as exc:
        raise reader.error(f"the array {name!r} is truncated or corrupt ({exc}).") from None
    return dtype, shape


def _read_arrays(npz, header, reader):
    manifest = header["arrays"]
    stored = set(npz.files) - {HEADER_KEY}
    missing, extra = sorted(set(manifest) - stored), sorted(stored - set(manifest))
    if missing:
        raise reader.error(f"array entries listed in the manifest are missing: {missing}.")
    if extra:
        raise reader.error(f"the archive holds array entries the manifest does not list: {extra}.")
    sizes = {info.filename: info.file_size for info in npz.zip.infolist()}
    arrays = {}
    for name, entry in manifest.items():
        if not isinstance(entry, dict) or set(entry) != {"shape", "dtype"}:
            raise reader.error(f"the manifest entry of {name!r} must be {{'shape': [...], 'dtype': ...}}.")
        shape, dtype_text = entry["shape"], entry["dtype"]
        if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape) or len(shape) > 2:
            raise reader.error(f"the manifest gives {name!r} the invalid shape {shape!r}.")
        if isinstance(dtype_text, str) and "O" in dtype_text:
            raise reader.error(f"the manifest gives {name!r} dtype=object; fastbp never loads Python objects.")
        try:
            dtype = _plain_dtype(dtype_text, set(_ARRAY_KINDS))
        except ValueError:
            raise reader.error(f"the manifest gives {name!r} the dtype {dtype_text!r}, which is not allowed.") from None
        stored_dtype, stored_shape = _member_header(npz, name, reader)
        if stored_dtype.hasobject:
            raise reader.error(
                f"the array {name!r} holds Python objects (dtype=object); fastbp.load never unpickles."
            )
        if stored_dtype != dtype or list(stored_shape) != shape:
            raise reader.error(
                f"the array {name!r} has dtype {stored_dtype.str} and shape {list(stored_shape)}; "
                f"the manifest says {dtype.str} and {shape}."
            )
        # an .npy member is its header and the raw data: nothing much larger is read
        if sizes[name + ".npy"] > math.prod(shape) * dtype.itemsize + _NPY_HEADER_ALLOWANCE:
            raise reader.error(f"the array entry {name!r} is larger than its manifest entry {entry!r} allows.")
        array = _read_member(npz, name, reader)
        if array.dtype != dtype or list(array.shape) != shape:  # pragma: no cover - checked from the header
            raise reader.error(f"the array {name!r} does not match its header.")
        arrays[name] = array
    return arrays
