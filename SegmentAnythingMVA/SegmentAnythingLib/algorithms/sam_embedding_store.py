"""On-disk store of SAM slice embeddings computed ahead of the annotators (`mva embed`), in zarr.

Format (zarr v3 group; version 1)::

    <store>/                               attrs {"format": "mva-sam-embeddings", "version": 1}
      cases/<volume digest>/               one group per case; the digest is volume_digest(): the voxels,
                                           their dtype and shape and the IJK->RAS matrix, so an edited or
                                           resampled volume never matches
          attrs  case_name, source_path, shape_kji, volume_sha256,
                 model {name, weights_sha256, input_size, bf16_encoder}   (encoder_identity())
                 window [width, level] and window_source ("auto" or "given"): the fixed embedding window
                 runs [{started, seconds, slices, workers {pid: slices}}]
          <axis>/                          "k", "j" or "i": the array axis the slices cut across
              attrs  orientation (axial / coronal / sagittal), pixel_to_index (4 x 4: the slice image's
                     (column, row) -> (i, j, k) layout), original_size, input_size, encoder_side
              embeddings  float16 (slices, C, g, g), chunks (1, C, g, g): one record per slice
              checksums   int64 (slices,): CRC-32 of each record's bytes, -1 while not written

A record is written before its checksum, so a run killed at any moment leaves records that are either
complete and verified or missing; readers verify the checksum and treat a mismatch as missing.
Numpy, zarr and torch only (no Slicer): the Slicer-side lookup is SegmentAnythingLib.stored_embeddings.
"""
from __future__ import annotations

import hashlib
import os
import weakref
import zlib
from typing import Optional

import numpy as np

from .sam_errors import SamInputError

STORE_FORMAT = "mva-sam-embeddings"
STORE_VERSION = 1
DEFAULT_STORE_NAME = "mva-embeddings.zarr"
AXIS_NAMES = ("k", "j", "i")
MISSING = -1
_FINGERPRINTS = weakref.WeakKeyDictionary()


class EmbeddingStoreError(SamInputError):
    """A store that cannot be opened or written, or one of another format."""


class CorruptRecordError(EmbeddingStoreError):
    """A stored record whose bytes do not match its checksum."""


def volume_digest(array_kji, ijk_to_ras):
    """SHA-256 (hex) of a volume's voxels, dtype, shape and geometry (matrix rounded to 1e-4 mm)."""
    array = np.ascontiguousarray(array_kji)
    digest = hashlib.sha256()
    matrix = np.round(np.asarray(ijk_to_ras, float), 4) + 0.0  # + 0.0 turns -0.0 into 0.0
    digest.update(f"{array.dtype.str}|{array.shape}|".encode())
    digest.update(matrix.tobytes())
    digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def encoder_identity(engine):
    """What makes two engines' embeddings equal: model name, encoder weights, input size setting, precision."""
    model = engine.model
    fingerprint = _FINGERPRINTS.get(model)
    if fingerprint is None:
        digest = hashlib.sha256()
        state = model.image_encoder.state_dict()
        for name in sorted(state):
            digest.update(name.encode())
            weights = np.ascontiguousarray(state[name].detach().to("cpu").numpy())
            digest.update(memoryview(weights.reshape(-1)).cast("B"))  # the same bytes as tobytes(), not copied
        for buffer in (model.pixel_mean, model.pixel_std):
            digest.update(buffer.detach().to("cpu").numpy().tobytes())
        fingerprint = _FINGERPRINTS[model] = digest.hexdigest()
    input_size = engine.input_size
    return {"name": str(getattr(engine, "model_name", "model")), "weights_sha256": fingerprint,
            "input_size": input_size if input_size in (None, "auto") else int(input_size),
            "bf16_encoder": bool(engine.bf16_encoder)}


def record_checksum(embedding):
    """CRC-32 of a record's float16 bytes."""
    return zlib.crc32(np.ascontiguousarray(embedding, np.float16).tobytes())


class EmbeddingStore:
    """A zarr store of case groups (see the module docstring).

    Parameters
    ----------
    path : path-like
        The store folder (``.../mva-embeddings.zarr``).
    mode : {"r", "a"}
        Read only, or read and write (created when missing).

    Raises
    ------
    EmbeddingStoreError
        Missing store in read mode, or a folder that is not an embedding store.
    """

    def __init__(self, path, mode="r"):
        import zarr
        self.path = os.fspath(path)
        if mode == "r" and not os.path.isdir(self.path):
            raise EmbeddingStoreError(f"No embedding store at {self.path}; run `mva embed` first")
        try:
            self.root = zarr.open_group(self.path, mode=mode)
        except (OSError, ValueError, KeyError) as error:
            raise EmbeddingStoreError(f"Cannot open the embedding store {self.path}: {error}") from None
        attrs = self.root.attrs.asdict()
        if mode != "r" and not attrs:
            self.root.attrs.update({"format": STORE_FORMAT, "version": STORE_VERSION})
            attrs = self.root.attrs.asdict()
        if attrs.get("format") != STORE_FORMAT or attrs.get("version") != STORE_VERSION:
            raise EmbeddingStoreError(f"{self.path} is not an embedding store of version {STORE_VERSION} "
                                      f"(format {attrs.get('format')!r}, version {attrs.get('version')!r})")
        self.mode = mode

    def case_digests(self):
        """Digests of the cases in the store."""
        if "cases" not in self.root:
            return []
        return sorted(self.root["cases"].group_keys())

    def case(self, digest):
        """The CaseRecords of a volume digest, or None."""
        if "cases" not in self.root or digest not in self.root["cases"]:
            return None
        return CaseRecords(self.root["cases"][digest])

    def open_case(self, digest, attrs):
        """The CaseRecords for writing a case: reused when its model and window match `attrs`, else replaced.

        Returns
        -------
        (CaseRecords, reason) : reason is "" when reused, else why the old records were dropped.
        """
        cases = self.root.require_group("cases")
        reason = ""
        if digest in cases:
            old = CaseRecords(cases[digest])
            reason = old.mismatch(attrs["model"], attrs["window"])
            if not reason:
                return old, ""
            del cases[digest]
        group = cases.create_group(digest)
        group.attrs.update({**attrs, "runs": []})
        return CaseRecords(group), reason

    def drop_case(self, digest):
        cases = self.root.require_group("cases")
        if digest in cases:
            del cases[digest]


class CaseRecords:
    """The records of one case: attrs and one AxisRecords per embedded axis."""

    def __init__(self, group):
        self.group = group
        self.attrs = group.attrs.asdict()

    @property
    def window(self):
        return tuple(float(v) for v in self.attrs["window"])

    def mismatch(self, model, window=None):
        """Why embeddings of `model` (encoder_identity) and `window` would differ from these; "" if they match."""
        stored = self.attrs.get("model", {})
        if stored.get("name") != model["name"] or stored.get("weights_sha256") != model["weights_sha256"]:
            return (f"the store holds embeddings of model {stored.get('name')!r} (weights "
                    f"{str(stored.get('weights_sha256'))[:8]}), not of {model['name']!r} "
                    f"(weights {model['weights_sha256'][:8]})")
        if stored.get("input_size") != model["input_size"]:
            return (f"the store was embedded at encoder input {stored.get('input_size') or 'full'}, the engine uses "
                    f"{model['input_size'] or 'full'}")
        if bool(stored.get("bf16_encoder")) != bool(model["bf16_encoder"]):
            return "the store and the engine differ in encoder precision (bf16 / fp32)"
        if window is not None and not np.allclose(self.window, window, rtol=0, atol=1e-3):
            return (f"the store was embedded with window {self.window[0]:g} / level {self.window[1]:g}, "
                    f"not {window[0]:g} / {window[1]:g}")
        return ""

    def axis(self, name):
        """AxisRecords of axis "k", "j" or "i", or None."""
        if name not in self.group:
            return None
        return AxisRecords(self.group[name])

    def require_axis(self, name, slices, embedding_shape, orientation, pixel_to_index, original_size,
                     input_size, encoder_side):
        """The AxisRecords of `name`, created for `slices` records of `embedding_shape` (C, g, g) if missing."""
        if name not in AXIS_NAMES:
            raise EmbeddingStoreError(f"Axis must be one of {AXIS_NAMES}, got {name!r}")
        attrs = {"orientation": orientation, "pixel_to_index": np.asarray(pixel_to_index, float).round(6).tolist(),
                 "original_size": [int(v) for v in original_size], "input_size": [int(v) for v in input_size],
                 "encoder_side": int(encoder_side)}
        if name in self.group:
            records = AxisRecords(self.group[name])
            if (records.embeddings.shape == (slices, *embedding_shape) and records.attrs["original_size"]
                    == attrs["original_size"] and records.attrs["pixel_to_index"] == attrs["pixel_to_index"]):
                return records
            del self.group[name]
        group = self.group.create_group(name)
        group.attrs.update(attrs)
        group.create_array("embeddings", shape=(slices, *embedding_shape), chunks=(1, *embedding_shape),
                           dtype="float16", fill_value=0)
        checksums = group.create_array("checksums", shape=(slices,), chunks=(slices,), dtype="int64",
                                       fill_value=MISSING)
        checksums[:] = np.full(slices, MISSING, np.int64)
        return AxisRecords(group)

    def add_run(self, run):
        runs = list(self.group.attrs.get("runs", []))
        runs.append(run)
        self.group.attrs["runs"] = runs[-20:]
        self.attrs = self.group.attrs.asdict()


class AxisRecords:
    """The slice records of one axis of one case."""

    def __init__(self, group):
        self.group = group
        self.attrs = group.attrs.asdict()
        self.embeddings = group["embeddings"]
        self.checksums = group["checksums"]
        self._checksums = None

    def __len__(self):
        return int(self.embeddings.shape[0])

    def checksum_table(self, refresh=False):
        """(slices,) int64 checksums; a table that cannot be read counts as all missing."""
        if self._checksums is None or refresh:
            try:
                self._checksums = np.asarray(self.checksums[:], np.int64)
            except (OSError, ValueError) as error:
                del error  # an unreadable table (a run killed while writing it): recompute everything
                self._checksums = np.full(len(self), MISSING, np.int64)
        return self._checksums

    def present(self, refresh=False):
        """Indices with a written record (not yet verified)."""
        return np.flatnonzero(self.checksum_table(refresh) != MISSING)

    def has(self, index):
        return 0 <= index < len(self) and self.checksum_table()[index] != MISSING

    def read(self, index):
        """The float16 record (C, g, g) of slice `index`.

        Raises
        ------
        KeyError
            Not written yet.
        CorruptRecordError
            Bytes that do not match the checksum.
        """
        if not self.has(index):
            raise KeyError(index)
        try:
            record = np.asarray(self.embeddings[index], np.float16)
        except (OSError, ValueError) as error:
            raise CorruptRecordError(f"stored record of slice {index} cannot be read: {error}") from None
        if record_checksum(record) != int(self.checksum_table()[index]):
            raise CorruptRecordError(f"the stored record of slice {index} is corrupt (checksum mismatch)")
        return record

    def write(self, index, record):
        """Write the record of slice `index`, then its checksum."""
        record = np.asarray(record, np.float16).reshape(self.embeddings.shape[1:])
        self.embeddings[index] = record
        table = self.checksum_table().copy()
        table[index] = record_checksum(record)
        self.checksums[:] = table
        self._checksums = table

    def forget(self, indices):
        """Mark records as missing (e.g. after a failed verification)."""
        table = self.checksum_table().copy()
        table[list(indices)] = MISSING
        self.checksums[:] = table
        self._checksums = table

    def verified_missing(self, verify=True):
        """Indices to (re)compute: never written, or (with `verify`) written but failing their checksum."""
        table = self.checksum_table(refresh=True)
        missing = [int(i) for i in np.flatnonzero(table == MISSING)]
        if verify:
            corrupt = []
            for index in np.flatnonzero(table != MISSING):
                try:
                    self.read(int(index))
                except CorruptRecordError:
                    corrupt.append(int(index))
            if corrupt:
                self.forget(corrupt)
            missing = sorted(missing + corrupt)
        return missing


def open_store(path, mode="r") -> Optional[EmbeddingStore]:
    """EmbeddingStore at `path`, or None when there is none (read mode)."""
    if mode == "r" and not os.path.isdir(os.fspath(path)):
        return None
    return EmbeddingStore(path, mode)
