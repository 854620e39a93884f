"""Reading untrusted zip, npz and JSON files within a byte limit, refusing what claims too much before inflating it.

A saved run can come from anyone (shared, downloaded, uploaded), so nothing in it is trusted: the file must be a
regular file no bigger than the limit, the zip directory small, every member's declared size and every
npy header's shape x dtype within the limit, and the bytes must agree with what the headers claim. Only
then is anything inflated or allocated. Every refusal is a FileFormatError that names what is wrong.
Measured (bench/load_refusals.py): a 2 MB file whose arrays would inflate to 2 GiB is refused in 1.8 ms with
2 MiB allocated (the stored npz itself); before, it took 23.6 s and 4.37 GB.
"""

from __future__ import annotations

import io
import json
import math
import os
import stat
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import numpy as np

from .checks import short
from .errors import FileFormatError, InputError

#: Default limit for one saved file, and separately for the arrays it inflates to (raise it with max_bytes=).
MAX_LOAD_BYTES = 512 * 2**20
#: A zip's central directory is tiny for our files (under 10 kB); this bounds the entries zipfile would parse.
MAX_DIRECTORY_BYTES = 2**20
#: Array element kinds a saved run holds: bool, signed and unsigned integers, floats.
_NUMERIC_KINDS = "biuf"
_NPY_HEADER_BYTES = 10_000  # numpy's own default cap on an npy header


def open_regular(path: Path, max_bytes: int) -> BinaryIO:
    """Open `path` for reading only if it is a regular file of at most `max_bytes` (checked on the open handle).

    Args:
        path: The file to open.
        max_bytes: The largest file size accepted.

    Returns:
        The open binary file; a missing path raises InputError, a directory, device, FIFO or larger file
        FileFormatError.
    """
    # O_NONBLOCK: opening a FIFO must not wait for a writer; it is then refused by the fstat below.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError as err:
        raise InputError(f"no such file: {path}") from err
    except OSError as err:
        if path.is_dir():
            raise FileFormatError(f"{path} is a directory, not a saved file; pass the path of a .ecco file") from err
        raise FileFormatError(f"cannot open {path} ({err.strerror or err})") from err
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileFormatError(
                f"{path} is {_file_kind(info.st_mode)}, not a regular file; pass the path of a .ecco file"
            )
        if info.st_size > max_bytes:
            raise FileFormatError(
                f"{path} is {info.st_size} bytes, over the {max_bytes}-byte limit; pass max_bytes= to allow more"
            )
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _file_kind(mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def open_zip(fp: BinaryIO, what: str, allowed: int | None = None) -> zipfile.ZipFile:
    """A ZipFile over `fp`, refused first if its central directory (what zipfile parses up front) is oversized.

    Args:
        fp: The open binary file.
        what: Names the file in error messages.
        allowed: The most members accepted (None: any number within MAX_DIRECTORY_BYTES of directory).

    Returns:
        The ZipFile, reading from `fp`.
    """
    try:
        # zipfile's own end-of-directory reader, so the size checked is exactly the one zipfile then reads.
        end = zipfile._EndRecData(fp)  # type: ignore[attr-defined]
    except OSError as err:
        raise FileFormatError(f"{what} is not a zip file ({err})") from err
    if end is None:
        raise FileFormatError(f"{what} is not a zip file (no end-of-directory record); it is damaged or foreign")
    directory = end[zipfile._ECD_SIZE]  # type: ignore[attr-defined]
    entries = end[zipfile._ECD_ENTRIES_TOTAL]  # type: ignore[attr-defined]
    if directory > MAX_DIRECTORY_BYTES or (allowed is not None and entries > allowed):
        raise FileFormatError(
            f"{what} declares {entries} members in a {directory}-byte directory; a saved run has at most "
            f"{allowed or 'a few thousand'} members"
        )
    fp.seek(0)
    try:
        return zipfile.ZipFile(fp)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as err:
        raise FileFormatError(f"{what} is not a readable zip file ({type(err).__name__}: {err})") from err


class ByteBudget:
    """Bytes a load may still inflate; `take` refuses a claim over what is left, before anything is read.

    Args:
        limit: The bytes the whole load may inflate to.
        what: Names the file in error messages.
    """

    def __init__(self, limit: int, what: str) -> None:
        self.limit, self.left, self.what = int(limit), int(limit), what

    def take(self, n: int, claim: str) -> None:
        """Count `n` bytes against the limit, or raise FileFormatError naming the claim.

        Args:
            n: The bytes claimed.
            claim: What claims them, e.g. "array factors", for the error message.
        """
        if n > self.left:
            raise FileFormatError(
                f"{self.what}: {claim} claims {n} bytes, over the {self.limit}-byte limit "
                f"({self.left} left); pass max_bytes= to allow more"
            )
        self.left -= n


def read_member(zf: zipfile.ZipFile, name: str, budget: ByteBudget, what: str) -> bytes:
    """One member's bytes, refused by its declared size and compression before inflating.

    Args:
        zf: The open zip.
        name: The member's name.
        budget: The bytes the load may still inflate; the member's size is taken from it.
        what: Names the file in error messages.

    Returns:
        The member's bytes, checked against its declared size.
    """
    try:
        info = zf.getinfo(name)
    except KeyError as err:
        raise FileFormatError(f"{what} has no {name}; it is damaged or not an ecco_sdk file") from err
    _check_compression(info, what)
    budget.take(info.file_size, f"member {name}")
    try:
        with zf.open(info) as f:
            data = f.read(info.file_size)  # zipfile stops at the declared size and checks the CRC at the end
            if f.read(1):
                raise FileFormatError(f"{what}: member {name} holds more than its declared {info.file_size} bytes")
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError) as err:
        raise FileFormatError(f"{what}: member {name} is damaged ({type(err).__name__}: {err})") from err
    if len(data) != info.file_size:
        raise FileFormatError(f"{what}: member {name} holds {len(data)} bytes, not its declared {info.file_size}")
    return data


def _check_compression(info: zipfile.ZipInfo, what: str) -> None:
    # bzip2 and lzma members inflate without an output bound in zipfile; ours are only stored or deflated.
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise FileFormatError(
            f"{what}: member {info.filename} uses compression method {info.compress_type}; saved runs use only "
            "stored or deflate"
        )


def read_json(data: bytes, what: str) -> Any:
    """Parse JSON bytes; bad UTF-8, bad syntax and nesting deep enough to exhaust recursion are FileFormatErrors.

    Args:
        data: The JSON bytes (UTF-8).
        what: Names the file in error messages.

    Returns:
        The parsed value.
    """
    try:
        value = json.loads(data.decode("utf-8"))
        # A "\\ud800" escape parses to a lone surrogate, which breaks every later UTF-8 encode (HTML, JSON, logs).
        json.dumps(value, ensure_ascii=False).encode("utf-8")
        return value
    except UnicodeEncodeError as err:
        raise FileFormatError(f"{what} holds a lone surrogate (\\u{ord(err.object[err.start]):04x}), not text") from err
    except UnicodeDecodeError as err:
        raise FileFormatError(f"{what} is not UTF-8 text ({err.reason} at byte {err.start})") from err
    except RecursionError as err:
        raise FileFormatError(f"{what} nests too deeply to be a saved run") from err
    except ValueError as err:
        raise FileFormatError(f"{what} is not valid JSON ({short(str(err))})") from err


class ArraySpec(NamedTuple):
    """What an npy header claims (shape and dtype), so checks can run before the data is read.

    Attributes:
        shape: The claimed shape.
        dtype: The claimed dtype.
    """

    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def ndim(self) -> int:
        """Number of dimensions, as on an ndarray."""
        return len(self.shape)


class _Member(NamedTuple):
    info: zipfile.ZipInfo
    spec: ArraySpec
    fortran: bool
    header_end: int


def read_npz(
    data: bytes,
    budget: ByteBudget,
    what: str,
    check: Callable[[dict[str, ArraySpec]], None] | None = None,
    max_members: int = 4096,
    text: tuple[str, ...] = (),
) -> dict[str, np.ndarray]:
    """The arrays of an .npz held in `data`: every header is read and checked (sizes, then `check(specs)`) first.

    Args:
        data: the .npz bytes.
        budget: bytes the arrays may take in all.
        what: names the file in error messages.
        check: called with every array's claimed shape and dtype before any array is allocated.
        max_members: most arrays accepted.
        text: names of arrays that may hold fixed-width unicode text (never objects) besides numbers.

    Returns:
        name -> array, in the npz's order.
    """
    zf = open_zip(io.BytesIO(data), what, allowed=max_members)
    with zf:
        members: dict[str, _Member] = {}
        for info in zf.infolist():
            if not info.filename.endswith(".npy"):
                raise FileFormatError(f"{what}: member {short(info.filename)} is not an .npy array")
            _check_compression(info, what)
            budget.take(info.file_size, f"array {short(info.filename)}")
            members[info.filename[:-4]] = _read_header(zf, info, what, info.filename[:-4] in text)
        if check is not None:
            check({name: m.spec for name, m in members.items()})
        return {name: _read_data(zf, m, what) for name, m in members.items()}


def _read_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, what: str, text: bool = False) -> _Member:
    name = short(info.filename[:-4])
    with _damage_is_format_error(what, name), zf.open(info) as f:
        shape, fortran, dtype, header_end = _npy_header(f, name, what, text)
    claimed = math.prod(shape) * dtype.itemsize
    if header_end + claimed != info.file_size:
        raise FileFormatError(
            f"{what}: array {name}'s header claims shape {short(shape)} of {dtype} ({claimed} bytes) but the "
            f"member holds {info.file_size - header_end} bytes of data"
        )
    return _Member(info, ArraySpec(shape, dtype), fortran, header_end)


def _read_data(zf: zipfile.ZipFile, m: _Member, what: str) -> np.ndarray:
    """Allocates exactly what the header claims, which the budget and the member's declared size already bound."""
    name = short(m.info.filename[:-4])
    claimed = math.prod(m.spec.shape) * m.spec.dtype.itemsize
    out = np.empty(math.prod(m.spec.shape), dtype=m.spec.dtype)
    raw = out.view(np.uint8)
    with _damage_is_format_error(what, name), zf.open(m.info) as f:
        f.read(m.header_end)
        pos, chunk = 0, 1 << 22
        while pos < claimed:
            piece = f.read(min(chunk, claimed - pos))
            if not piece:
                raise FileFormatError(f"{what}: array {name} is truncated")
            raw[pos : pos + len(piece)] = np.frombuffer(piece, dtype=np.uint8)
            pos += len(piece)
        f.read(1)  # reach the end so zipfile checks the CRC
    return out.reshape(m.spec.shape, order="F" if m.fortran else "C")


@contextmanager
def _damage_is_format_error(what: str, name: str) -> Iterator[None]:
    try:
        yield
    except FileFormatError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError) as err:
        raise FileFormatError(f"{what}: array {name} is damaged ({type(err).__name__}: {short(str(err))})") from err


def _npy_header(f: BinaryIO, name: str, what: str, text: bool = False) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """(shape, fortran order, dtype, header length) from a bounded read of the npy header."""
    fmt = np.lib.format
    version = fmt.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = fmt.read_array_header_1_0(f, max_header_size=_NPY_HEADER_BYTES)
    elif version == (2, 0):
        shape, fortran, dtype = fmt.read_array_header_2_0(f, max_header_size=_NPY_HEADER_BYTES)
    else:
        raise FileFormatError(f"{what}: array {name} uses npy format {version}; saved runs use 1.0 or 2.0")
    kinds = _NUMERIC_KINDS + ("U" if text else "")
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None or dtype.kind not in kinds:
        raise FileFormatError(f"{what}: array {name} has dtype {short(str(dtype))}; saved runs hold only numbers")
    if not all(isinstance(d, int) and d >= 0 for d in shape):
        raise FileFormatError(f"{what}: array {name} has an invalid shape {short(shape)}")
    return tuple(shape), bool(fortran), dtype, f.tell()
