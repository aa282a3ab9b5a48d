"""Exceptions of the Segment Anything engine, each with a message a user can act on.

Input errors (image, prompt) are ``ValueError`` subclasses. Checkpoint errors share the base
``CheckpointError``; the missing-file and download variants are also ``OSError`` so that callers
catching file errors see them.
"""


class SamInputError(ValueError):
    """Base class of bad input to the engine (image, prompt, parameters)."""


class InvalidImageError(SamInputError):
    """The slice image is not a 2D uint8 RGB array of shape (rows, columns, 3)."""


class InvalidPromptError(SamInputError):
    """Points, labels, box or previous mask have the wrong shape, type or values."""


class EmptyPromptError(InvalidPromptError):
    """Neither a point nor a box was given."""


class PromptOutsideImageError(InvalidPromptError):
    """A point or box corner lies outside the slice image."""


class CheckpointError(Exception):
    """Base class of checkpoint problems (missing, download, checksum, content)."""


class UnknownModelError(CheckpointError, ValueError):
    """A model name that is not in the checkpoint table."""


class CheckpointMissingError(CheckpointError, FileNotFoundError):
    """The checkpoint is not on disk and cannot (or may not) be downloaded."""


class CheckpointDownloadError(CheckpointError, OSError):
    """The download failed (offline, HTTP error, server without the file)."""


class DownloadCancelledError(CheckpointError):
    """The caller cancelled the download; the partial file is kept for resuming."""


class ChecksumMismatchError(CheckpointError, ValueError):
    """The downloaded or local file has the wrong size or SHA-256."""


class CheckpointLoadError(CheckpointError, ValueError):
    """The file is corrupt, not a PyTorch checkpoint, or for another model type."""


class DeviceUnavailableError(SamInputError):
    """The requested compute device (CUDA, MPS) is not available on this computer."""


class MissingEmbeddingError(SamInputError):
    """A prompt was given for a slice whose embedding is not cached and no image was supplied."""


class UnofficialCheckpointWarning(UserWarning):
    """A checkpoint the user chose differs from the official file (a fine-tune or converted copy); it is still loaded."""
