"""The compute protocol's one encoding: a JSON header plus raw little-endian array bytes. Never pickle.

A message (a *frame*) is::

    b"MVA1"  |  header length (uint32, little-endian)  |  header (UTF-8 JSON object)  |  array bytes

The header lists its arrays as ``{"name", "dtype", "shape", "offset", "nbytes"}``; their bytes follow the
header back to back, C order, little-endian, from a short list of numeric dtypes. Nothing in a frame is
executed or imported when it is read, so a pickle (or any other payload) is refused with a ProtocolError
before anything in it is looked at. The same bytes travel over a worker's pipes and as HTTP bodies.
"""
from __future__ import annotations

import json
import struct

import numpy as np

from MVAComputeLib.compute_errors import ProtocolError

MAGIC = b"MVA1"
MEDIA_TYPE = "application/x-mva-frame"
PROTOCOL_VERSION = 1
MAX_HEADER_BYTES = 1 << 20
MAX_PAYLOAD_BYTES = 1 << 33  # 8 GiB: a whole CT volume of float64 still fits
ALLOWED_DTYPES = ("bool", "uint8", "int8", "uint16", "int16", "uint32", "int32", "int64", "float16", "float32",
                  "float64")
_PREFIX = struct.Struct("<4sI")


def encode_message(header, arrays=None):
    """One frame of `header` (JSON-serialisable dict) and `arrays` ({name: ndarray}).

    Raises
    ------
    ProtocolError
        An array of a dtype outside ALLOWED_DTYPES, or a header that is not a JSON object.
    """
    if not isinstance(header, dict):
        raise ProtocolError(f"A message header is a dict, not {type(header).__name__}")
    listed, chunks, offset = [], [], 0
    for name, array in (arrays or {}).items():
        array = np.asarray(array)
        dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
        if dtype.name not in ALLOWED_DTYPES:
            raise ProtocolError(f"Array {name!r} has dtype {array.dtype}; the protocol carries only "
                                f"{', '.join(ALLOWED_DTYPES)}")
        data = np.ascontiguousarray(array, dtype=dtype.newbyteorder("<")).tobytes()
        listed.append({"name": str(name), "dtype": dtype.name, "shape": list(array.shape), "offset": offset,
                       "nbytes": len(data)})
        chunks.append(data)
        offset += len(data)
    try:
        text = json.dumps({**header, "v": PROTOCOL_VERSION, "arrays": listed}, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as error:
        raise ProtocolError(f"The message header is not plain JSON: {error}") from None
    return b"".join([_PREFIX.pack(MAGIC, len(text)), text, *chunks])


def decode_message(frame):
    """(header, {name: ndarray}) of one whole frame (bytes).

    Raises
    ------
    ProtocolError
        Not a frame of this protocol (a pickle, JSON, text, a truncated frame), or arrays that do not add up.
    """
    frame = memoryview(frame)
    header, payload_start = _read_header(bytes(frame[:_PREFIX.size]), lambda n: bytes(frame[_PREFIX.size:
                                                                                             _PREFIX.size + n]))
    payload = frame[payload_start:]
    arrays = _arrays_from(header, payload)
    return header, arrays


def read_message(stream):
    """Read one frame from a binary stream; None at a clean end of the stream.

    Raises
    ------
    ProtocolError
        Garbage on the stream or a frame cut short.
    """
    prefix = _read_exactly(stream, _PREFIX.size, allow_eof=True)
    if prefix is None:
        return None
    header, _ = _read_header(prefix, lambda n: _read_exactly(stream, n))
    size = sum(item["nbytes"] for item in header["arrays"])
    payload = _read_exactly(stream, size) if size else b""
    return header, _arrays_from(header, memoryview(payload))


def write_message(stream, header, arrays=None):
    """Write one frame to a binary stream and flush it."""
    stream.write(encode_message(header, arrays))
    stream.flush()


def _read_header(prefix, read):
    if len(prefix) < _PREFIX.size:
        raise ProtocolError("The message is shorter than a frame prefix")
    magic, length = _PREFIX.unpack(prefix)
    if magic != MAGIC:
        hint = " (a Python pickle)" if prefix[:1] == b"\x80" else ""
        raise ProtocolError(f"Not an MVA compute frame{hint}: it must start with {MAGIC!r}; pickled or other "
                            "executable payloads are refused")
    if length > MAX_HEADER_BYTES:
        raise ProtocolError(f"The frame header claims {length} bytes (at most {MAX_HEADER_BYTES})")
    text = read(length)
    if text is None or len(text) != length:
        raise ProtocolError("The frame header is cut short")
    try:
        header = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise ProtocolError(f"The frame header is not JSON: {error}") from None
    if not isinstance(header, dict) or not isinstance(header.get("arrays", []), list):
        raise ProtocolError("The frame header must be a JSON object with a list of arrays")
    if header.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(f"Protocol version {header.get('v')!r} is not {PROTOCOL_VERSION}: update the worker "
                            "or the service to the same SegmentAnythingMVA version")
    header.setdefault("arrays", [])
    _check_listing(header["arrays"])
    return header, _PREFIX.size + length


def _check_listing(listing):
    expected_offset = 0
    for item in listing:
        if not isinstance(item, dict) or set(item) != {"name", "dtype", "shape", "offset", "nbytes"}:
            raise ProtocolError(f"Bad array entry in the frame header: {item!r}")
        if item["dtype"] not in ALLOWED_DTYPES:
            raise ProtocolError(f"Array {item['name']!r} has dtype {item['dtype']!r}; allowed: "
                                f"{', '.join(ALLOWED_DTYPES)}")
        shape = item["shape"]
        if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
            raise ProtocolError(f"Array {item['name']!r} has a bad shape {shape!r}")
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(item["dtype"]).itemsize
        if item["nbytes"] != nbytes or item["offset"] != expected_offset:
            raise ProtocolError(f"Array {item['name']!r}: {item['nbytes']} bytes at {item['offset']} do not match "
                                f"shape {shape} of {item['dtype']}")
        expected_offset += nbytes
    if expected_offset > MAX_PAYLOAD_BYTES:
        raise ProtocolError(f"The frame carries {expected_offset} bytes of arrays (at most {MAX_PAYLOAD_BYTES})")


def _arrays_from(header, payload):
    size = sum(item["nbytes"] for item in header["arrays"])
    if len(payload) != size:
        raise ProtocolError(f"The frame has {len(payload)} bytes of arrays; its header lists {size}")
    arrays = {}
    for item in header["arrays"]:
        data = payload[item["offset"]:item["offset"] + item["nbytes"]]
        dtype = np.dtype(item["dtype"]).newbyteorder("<")
        arrays[item["name"]] = np.frombuffer(data, dtype=dtype).reshape(item["shape"]).astype(
            dtype.newbyteorder("="), copy=True)
    return arrays


def _read_exactly(stream, size, allow_eof=False):
    chunks, remaining = [], size
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            if allow_eof and remaining == size:
                return None
            raise ProtocolError(f"The stream ended {remaining} bytes before the end of a frame")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
