"""SAM 2 as Smart Propagation's video strategy "sam2": windowed slices as frames, a tracker per propagation.

`run_sam2_propagation` is the plain arrays-in, result-out function for a worker process; `register_sam2_propagation`
makes the strategy available to SmartPropagationLogic in this process.
"""
import hashlib

from MVABridgeLib.windowing import auto_window_level, window_to_rgb

STRATEGY_NAME = "sam2"


def sam2_tracker_factory(engine, window_level=None, storage_device="cpu"):
    """`factory(image_kji, spacing_kji) -> Sam2VideoTracker` for SmartPropagationLib's register_video_strategy.

    Slices are windowed with `window_level` (None: automatic from the volume, as Slicer's auto W/L: a SliceStack's
    own `window_level`, that of the whole volume it was taken from) and cached in the engine under a key of their
    content, window and model, so a re-propagation re-uses the embeddings. `image_kji` is an array or a SliceStack
    (SmartPropagationLib's video_frames: only the slices a run reads, by their index in the volume).
    """
    from SegmentAnythingLib.algorithms.sam2_video_tracker import Sam2VideoTracker

    def factory(image_kji, spacing_kji):
        window, level = window_level or getattr(image_kji, "window_level", None) or auto_window_level(
            getattr(image_kji, "array", image_kji))

        def frame(k):
            return window_to_rgb(image_kji[k], window, level)

        def key(k):
            digest = hashlib.sha1(image_kji[k].tobytes()).hexdigest()
            return ("sam2-slice", digest, image_kji[k].shape, round(window, 3), round(level, 3),
                    getattr(engine, "model_name", "sam2"))
        return Sam2VideoTracker(engine, frame, image_kji.shape[0], frame_key=key, storage_device=storage_device)
    return factory


def register_sam2_propagation(engine, window_level=None):
    """Make strategy "sam2" available to Smart Propagation with this engine."""
    from SmartPropagationLib.algorithms.sam2_video import register_video_strategy
    register_video_strategy(STRATEGY_NAME, sam2_tracker_factory(engine, window_level))


def run_sam2_propagation(image_kji, spacing_kji, seed_k, drawn_masks, direction="both", max_slices=50,
                         stop_rule=None, window_level=None, engine=None, model_name="sam2.1_tiny", checkpoint=None,
                         progress=None, cancel=None, corrected_from=None, prompts=None):
    """Propagate with SAM 2 on plain arrays (for the desktop effect's worker process).

    Parameters
    ----------
    image_kji : ndarray (K, J, I)
        The volume with the propagation axis first.
    spacing_kji : (float, float, float)
    seed_k : int
        The slice to start from (the corrected slice when re-propagating).
    drawn_masks : dict of int -> ndarray (J, I) bool
        Every slice the user drew, the seed included: they condition SAM 2 and are never changed.
    direction, max_slices, stop_rule, progress, cancel
        As in SmartPropagationLib.algorithms.sam2_video.propagate_video.
    window_level : (float, float), optional
        What the user sees; automatic when None.
    engine : Sam2Engine, optional
        Re-used between calls (its embeddings stay cached); otherwise built from `model_name` / `checkpoint`.
    corrected_from : PropagationResult, optional
        The earlier result: re-propagate beyond `seed_k` away from its seed and keep the rest.
    prompts : dict of int -> SlicePrompts, optional
        The user's points / box per slice (in that slice's pixels: x = column, y = row): conditioning frames as
        SAM 2's add_new_points_or_box; the seed may have prompts instead of a drawing.

    Returns
    -------
    PropagationResult
    """
    from SmartPropagationLib.algorithms.sam2_video import propagate_video, repropagate_video
    if engine is None:
        from SegmentAnythingLib.sam2_engine_factory import create_sam2_engine
        engine = create_sam2_engine(model_name, checkpoint)
    tracker = sam2_tracker_factory(engine, window_level)(image_kji, spacing_kji)
    if corrected_from is not None:
        return repropagate_video(tracker, corrected_from, seed_k, drawn_masks, None, max_slices, spacing_kji,
                                 stop_rule, progress, cancel, shape_kji=image_kji.shape, prompts=prompts)
    return propagate_video(tracker, image_kji.shape, seed_k, drawn_masks, direction, max_slices, spacing_kji,
                           stop_rule, progress, cancel, prompts)
