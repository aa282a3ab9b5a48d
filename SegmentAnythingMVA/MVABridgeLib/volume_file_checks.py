"""Is an image file complete? Header-declared voxel bytes against the bytes the file holds (decompressed).

ITK reads a truncated NIfTI file (`.nii` or `.nii.gz`) without an error and fills the missing voxels with
zeros, so the readers compare the header with the data before ITK sees the file. Pure Python: no Slicer,
no SimpleITK.
"""
import gzip
import os
import struct
import zlib

CHUNK_BYTES = 1 << 22
NRRD_TYPE_BYTES = {
    1: ("signed char", "int8", "int8_t", "uchar", "unsigned char", "uint8", "uint8_t"),
    2: ("short", "short int", "signed short", "signed short int", "int16", "int16_t", "ushort", "unsigned short",
        "unsigned short int", "uint16", "uint16_t"),
    4: ("int", "signed int", "int32", "int32_t", "uint", "unsigned int", "uint32", "uint32_t", "float"),
    8: ("longlong", "long long", "long long int", "signed long long", "signed long long int", "int64", "int64_t",
        "ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t", "double"),
}


class IncompleteFileError(ValueError):
    """The file holds fewer voxel bytes than its header declares, or its compressed stream is cut or corrupt."""


def check_file_complete(path):
    """Raise IncompleteFileError if a NIfTI or NRRD file holds fewer voxel bytes than its header declares.

    Other formats, and files whose header this check does not understand, are left to the reader.

    Parameters
    ----------
    path : str or path-like
        A file (not a folder).
    """
    path = os.fspath(path)
    lower = path.lower()
    if lower.endswith((".nii", ".nii.gz")):
        _check_nifti(path, lower.endswith(".gz"))
    elif lower.endswith(".nrrd"):
        _check_nrrd(path)


def _payload_size(path, offset, compressed):
    """Bytes after `offset` (decompressed when `compressed`); raises IncompleteFileError on a cut or corrupt stream."""
    if not compressed:
        return max(os.path.getsize(path) - offset, 0)
    total = 0
    with open(path, "rb") as stream:
        stream.seek(offset)
        decompressor = zlib.decompressobj(wbits=47)  # gzip or zlib header
        try:
            while True:
                block = stream.read(CHUNK_BYTES)
                if not block:
                    break
                total += len(decompressor.decompress(block))
                while decompressor.eof and decompressor.unused_data:  # concatenated gzip members
                    rest = decompressor.unused_data
                    decompressor = zlib.decompressobj(wbits=47)
                    total += len(decompressor.decompress(rest))
        except zlib.error as error:
            raise IncompleteFileError(f"{path} is corrupt: its compressed data cannot be decompressed ({error}); "
                                      "export or copy the file again") from None
        if not decompressor.eof:
            raise IncompleteFileError(f"{path} is truncated: its compressed data ends after {total} bytes; "
                                      "export or copy the file again (an interrupted download or copy?)")
    return total


def _read_head(path, compressed, count):
    try:
        if compressed:
            with gzip.open(path, "rb") as stream:
                return stream.read(count)
        with open(path, "rb") as stream:
            return stream.read(count)
    except (OSError, EOFError, zlib.error):
        return b""  # an unreadable head: _payload_size or the reader reports it


def _check_nifti(path, compressed):
    head = _read_head(path, compressed, 540)
    if len(head) < 348:
        _payload_size(path, 0, compressed)  # a cut gzip stream is the likely reason: say so
        raise IncompleteFileError(f"{path} is too short for a NIfTI header ({len(head)} bytes); "
                                  "it is truncated or not a NIfTI file")
    declared = _nifti_layout(head)
    if declared is None:
        return
    voxel_offset, data_bytes = declared
    found = _payload_size(path, 0, compressed)
    if found < voxel_offset + data_bytes:
        raise IncompleteFileError(
            f"{path} is truncated: its header declares {data_bytes} bytes of voxels but the file holds "
            f"{max(found - voxel_offset, 0)}; export or copy the file again")


def _nifti_layout(head):
    """(voxel offset, voxel bytes) of a single-file NIfTI-1 or NIfTI-2 header, or None if not one."""
    for order in "<>":
        size = struct.unpack(order + "i", head[:4])[0]
        if size == 348 and head[344:347] == b"n+1":
            dims = struct.unpack(order + "8h", head[40:56])
            bitpix = struct.unpack(order + "h", head[72:74])[0]
            voxel_offset = int(struct.unpack(order + "f", head[108:112])[0])
            break
        if size == 540 and len(head) >= 540 and head[4:7] == b"n+2":
            bitpix = struct.unpack(order + "h", head[14:16])[0]
            dims = struct.unpack(order + "8q", head[16:80])
            voxel_offset = struct.unpack(order + "q", head[168:176])[0]
            break
    else:
        return None
    rank = dims[0]
    if not 1 <= rank <= 7 or bitpix <= 0 or any(d < 1 for d in dims[1:rank + 1]):
        return None  # a header ITK will refuse with its own message
    count = 1
    for d in dims[1:rank + 1]:
        count *= int(d)
    return voxel_offset, count * bitpix // 8


def _check_nrrd(path):
    with open(path, "rb") as stream:
        head = stream.read(1 << 16)
    if not head.startswith(b"NRRD"):
        return
    end, gap = head.find(b"\n\n"), 2
    if end < 0:
        end, gap = head.find(b"\r\n\r\n"), 4
    if end < 0:
        if len(head) < 1 << 16:  # Slicer's segmentation reader aborts the process on such a file
            raise IncompleteFileError(f"{path} is truncated: its NRRD header ends after {len(head)} bytes, before "
                                      "the blank line that starts the voxels; export or copy the file again")
        return
    fields = {}
    for line in head[:end].decode("latin-1").splitlines()[1:]:
        if ":" in line and not line.startswith("#"):
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.lstrip("=").strip()
    if "data file" in fields or "datafile" in fields or fields.get("line skip", "0") != "0" \
            or fields.get("byte skip", "0") != "0":
        return  # detached or offset data: left to the reader
    type_bytes = next((n for n, names in NRRD_TYPE_BYTES.items() if fields.get("type", "").lower() in names), None)
    encoding = fields.get("encoding", "").lower()
    try:
        sizes = [int(v) for v in fields.get("sizes", "").split()]
    except ValueError:
        return
    if type_bytes is None or not sizes or encoding not in ("raw", "gzip", "gz"):
        return
    count = 1
    for s in sizes:
        count *= s
    found = _payload_size(path, end + gap, encoding != "raw")
    if found < count * type_bytes:
        raise IncompleteFileError(
            f"{path} is truncated: its header declares {count * type_bytes} bytes of voxels but the file holds "
            f"{found}; export or copy the file again")
