"""The slices a video propagation (SAM 2) reads, and a stack holding only those.

A video tracker reads the slices tracking reaches (the seed +/- ``max_slices`` in the run's directions) and every
conditioning slice (drawn or prompted), wherever it is. Its memory is indexed by the slice's place in the whole
volume (SAM 2's temporal position encodings and object-pointer window depend on frame indices and the frame
count), so a stack of just those slices, indexed as in the whole volume, gives the same tracking as the whole
volume: that is what goes to a compute worker instead of the whole stack.

SAM 2 resizes each whole slice to its square input, so the slices are never cropped in-plane: a crop would change
what the model sees.
"""
import numpy as np

from .propagation_errors import PropagationInputError


def video_frame_indices(seed_k, conditioning, direction, max_slices, count):
    """Sorted whole-volume indices of the slices a video propagation can read.

    Parameters
    ----------
    seed_k : int
    conditioning : iterable of int
        The drawn and prompted slices (all condition the tracker).
    direction : {+1, -1, 'both'}
    max_slices : int
    count : int
        Slices along the propagation axis.

    Returns
    -------
    list of int
    """
    ways = (1, -1) if direction == "both" else (int(direction),)
    low = max(seed_k - max_slices, 0) if -1 in ways else seed_k
    high = min(seed_k + max_slices, count - 1) if 1 in ways else seed_k
    return sorted(set(range(int(low), int(high) + 1)) | {int(k) for k in conditioning if 0 <= int(k) < count})


class SliceStack:
    """Some slices of a (count, rows, columns) volume, read by their index in the whole volume.

    Parameters
    ----------
    frames : sequence of int
        Whole-volume index of each slice of ``slices``.
    slices : ndarray (len(frames), rows, columns)
    count : int
        Slices along the axis in the whole volume.
    window_level : (float, float), optional
        The whole volume's automatic (window, level), for a tracker that windows the slices itself (the slices
        here are not the whole volume).
    """

    ndim = 3

    def __init__(self, frames, slices, count, window_level=None):
        frames = [int(k) for k in frames]
        slices = np.asarray(slices)
        if not frames or slices.ndim != 3 or slices.shape[0] != len(frames):
            raise PropagationInputError(f"{len(frames)} frame indices for slices of shape {slices.shape}")
        if len(set(frames)) != len(frames) or any(not 0 <= k < int(count) for k in frames):
            raise PropagationInputError(f"Frame indices must be distinct, from 0 to {int(count) - 1}; got {frames}")
        self.frames, self.array, self.count = tuple(frames), slices, int(count)
        self.window_level = None if window_level is None else tuple(float(v) for v in window_level)
        self._row = {k: n for n, k in enumerate(frames)}

    @property
    def shape(self):
        return (self.count,) + tuple(self.array.shape[1:])

    @property
    def dtype(self):
        return self.array.dtype

    def __len__(self):
        return self.count

    def __getitem__(self, k):
        """Slice ``k`` (whole-volume index) as a 2D array.

        Raises
        ------
        PropagationInputError
            The slice was not included (the run was planned for other slices).
        """
        if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
            raise PropagationInputError(f"A SliceStack is read one slice at a time by index; got {k!r}")
        row = self._row.get(int(k))
        if row is None:
            raise PropagationInputError(f"Slice {int(k)} is not in this stack of slices {self.frames[0]} to "
                                        f"{self.frames[-1]}: plan the propagation again")
        return self.array[row]
