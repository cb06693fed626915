"""Binary framing of one channel message: a fixed header plus the raw payload bytes.

Never pickle: a frame is a fixed, validated header followed by raw little-endian array bytes.

Header layout (all integers little-endian)::

    offset size  field
    0      4     magic b"SMPF"
    4      1     version (1)
    5      1     kind: 1 = array, 2 = bytes
    6      1     dtype code (0 for bytes; see DTYPES)
    7      1     ndim (0..MAX_NDIM; 0 for bytes)
    8      1     tag length in bytes (1..255)
    9      3     reserved, must be zero
    12     8     payload length in bytes
    20     8*nd  shape (one u64 per dimension)
    ..     tlen  tag (UTF-8)

The decoder checks every field, and rejects a declared payload length above `max_frame`
before anything of that size is allocated. Arrays are rebuilt with `numpy.frombuffer` over the
received buffer (no copy).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from network.channel import MAX_TAG_BYTES, Payload, check_tag
from network.errors import FrameError

MAGIC = b"SMPF"
VERSION = 1
KIND_ARRAY = 1
KIND_BYTES = 2
MAX_NDIM = 32
#: default largest payload accepted (bytes); transports may pass their own limit
DEFAULT_MAX_FRAME = 1 << 30
FIXED = struct.Struct("<4sBBBBB3sQ")
FIXED_SIZE = FIXED.size  # 20
MAX_HEADER_SIZE = FIXED_SIZE + 8 * MAX_NDIM + MAX_TAG_BYTES

#: wire dtype codes; all little-endian
DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<u1"),
    2: np.dtype("<u2"),
    3: np.dtype("<u4"),
    4: np.dtype("<u8"),
    5: np.dtype("<i1"),
    6: np.dtype("<i2"),
    7: np.dtype("<i4"),
    8: np.dtype("<i8"),
    9: np.dtype("<f4"),
    10: np.dtype("<f8"),
    11: np.dtype("?"),
}
_CODES = {dt: code for code, dt in DTYPES.items()}


@dataclass(frozen=True, slots=True)
class FrameHeader:
    """A decoded, validated header. `length` is the payload size in bytes."""

    kind: int
    dtype: np.dtype | None
    shape: tuple[int, ...]
    tag: str
    length: int


def _as_wire_array(arr: np.ndarray) -> np.ndarray:
    """Return arr as a C-contiguous little-endian array (a copy only if needed)."""
    dt = arr.dtype
    if dt.byteorder == ">":
        arr = arr.astype(dt.newbyteorder("<"))
    if not arr.flags.c_contiguous:
        arr = arr.copy(order="C")  # (np.ascontiguousarray would turn 0-d into 1-d)
    return arr


def encode_header(tag: str, payload: Payload) -> tuple[bytes, memoryview]:
    """Encode the header for `payload` under `tag`; return (header, payload bytes view).

    The second element is a zero-copy byte view of the payload (for C-contiguous arrays).
    Raises FrameError for an unsupported payload type, dtype or ndim, or a bad tag.
    """
    traw = check_tag(tag)
    if isinstance(payload, np.ndarray):
        arr = _as_wire_array(payload)
        code = _CODES.get(arr.dtype)
        if code is None:
            raise FrameError(f"unsupported dtype {arr.dtype} for tag {tag!r}")
        if arr.ndim > MAX_NDIM:
            raise FrameError(f"array has {arr.ndim} dimensions > {MAX_NDIM}")
        body = memoryview(arr.reshape(-1)).cast("B") if arr.size else memoryview(b"")  # type: ignore[arg-type]
        head = FIXED.pack(MAGIC, VERSION, KIND_ARRAY, code, arr.ndim, len(traw), b"\0\0\0", arr.nbytes)
        head += struct.pack(f"<{arr.ndim}Q", *arr.shape) + traw
        return head, body
    if isinstance(payload, bytes | bytearray | memoryview):
        body = memoryview(payload).cast("B") if isinstance(payload, memoryview) else memoryview(payload)
        head = FIXED.pack(MAGIC, VERSION, KIND_BYTES, 0, 0, len(traw), b"\0\0\0", body.nbytes) + traw
        return head, body
    raise FrameError(f"payload must be a numpy array or bytes, got {type(payload).__name__}")


def header_size(prefix: bytes | memoryview) -> int:
    """Total header size given at least its first FIXED_SIZE bytes (validated)."""
    if len(prefix) < FIXED_SIZE:
        raise FrameError(f"frame header truncated: {len(prefix)} < {FIXED_SIZE} bytes")
    magic, version, _kind, _code, ndim, tlen, _res, _length = FIXED.unpack_from(prefix, 0)
    if magic != MAGIC:
        raise FrameError("bad frame magic")
    if version != VERSION:
        raise FrameError(f"unsupported frame version {version}")
    if ndim > MAX_NDIM:
        raise FrameError(f"frame ndim {ndim} > {MAX_NDIM}")
    return int(FIXED_SIZE + 8 * ndim + tlen)


def decode_header(buf: bytes | memoryview, *, max_frame: int = DEFAULT_MAX_FRAME) -> FrameHeader:
    """Decode and validate a complete header (exactly `header_size` bytes, no more).

    Raises FrameError for anything malformed, including a payload length above `max_frame`
    or one that does not equal prod(shape) * itemsize.
    """
    size = header_size(buf)
    if len(buf) != size:
        raise FrameError(f"frame header is {len(buf)} bytes, expected {size}")
    _magic, _version, kind, code, ndim, tlen, reserved, length = FIXED.unpack_from(buf, 0)
    if reserved != b"\0\0\0":
        raise FrameError("reserved header bytes are not zero")
    if length > max_frame:
        raise FrameError(f"declared payload length {length} exceeds the maximum {max_frame}")
    if tlen == 0:
        raise FrameError("empty tag")
    shape = struct.unpack_from(f"<{ndim}Q", buf, FIXED_SIZE)
    try:
        tag = bytes(buf[FIXED_SIZE + 8 * ndim : size]).decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError("tag is not valid UTF-8") from None
    if kind == KIND_BYTES:
        if code != 0 or ndim != 0:
            raise FrameError("bytes frame with a dtype or shape")
        return FrameHeader(kind, None, (), tag, length)
    if kind != KIND_ARRAY:
        raise FrameError(f"unknown frame kind {kind}")
    dtype = DTYPES.get(code)
    if dtype is None:
        raise FrameError(f"unknown dtype code {code}")
    count, span = 1, 1
    for d in shape:  # Python ints: no overflow
        count *= d
        span *= max(d, 1)
    # `span` bounds the dimensions of empty arrays too: numpy refuses shapes whose non-zero
    # dimensions multiply past its index range, e.g. (0, 2^30, 2^30, 2^30)
    if span * dtype.itemsize > max_frame:
        raise FrameError(f"shape {tuple(shape)} exceeds the maximum frame size for tag {tag!r}")
    if count * dtype.itemsize != length:
        raise FrameError(
            f"declared length {length} != prod{tuple(shape)} * {dtype.itemsize} for tag {tag!r}"
        )
    return FrameHeader(kind, dtype, tuple(shape), tag, length)


def build_payload(header: FrameHeader, body: bytes | bytearray | memoryview) -> Payload:
    """Rebuild the payload from its body bytes (zero-copy for arrays; read-only if body is)."""
    if len(body) != header.length:
        raise FrameError(f"payload is {len(body)} bytes, header declared {header.length}")
    if header.kind == KIND_BYTES:
        return bytes(body)
    return np.frombuffer(body, dtype=header.dtype).reshape(header.shape)


def encode_frame(tag: str, payload: Payload) -> bytes:
    """Header and payload in one bytes object (copies; for small messages and tests)."""
    head, body = encode_header(tag, payload)
    return head + bytes(body)


def decode_frame(data: bytes | bytearray | memoryview, *, max_frame: int = DEFAULT_MAX_FRAME) -> tuple[str, Payload]:
    """Decode one complete frame produced by `encode_frame`; return (tag, payload)."""
    mv = memoryview(data).cast("B") if not isinstance(data, bytes | bytearray) else memoryview(data)
    size = header_size(mv[:FIXED_SIZE])
    if len(mv) < size:
        raise FrameError(f"frame truncated inside the header ({len(mv)} < {size} bytes)")
    header = decode_header(mv[:size], max_frame=max_frame)
    body = mv[size:]
    if len(body) != header.length:
        raise FrameError(
            f"frame body is {len(body)} bytes, header declared {header.length} (tag {header.tag!r})"
        )
    return header.tag, build_payload(header, body)
