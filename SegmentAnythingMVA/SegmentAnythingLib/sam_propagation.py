"""SAM as a Smart Propagation strategy: the previous slice's mask gives the box, a point and the mask prompt."""
import hashlib

import numpy as np
from scipy import ndimage

from MVABridgeLib.windowing import window_to_rgb


def mask_to_lowres_logits(mask, input_size, img_size, lowres_size):
    """A binary mask (rows, cols) as SAM low-res mask logits (L, L), in the padded model frame."""
    rows, cols = input_size
    zoom = (rows / mask.shape[0], cols / mask.shape[1])
    scaled = ndimage.zoom(mask.astype(np.float32), zoom, order=1)[:rows, :cols]
    frame = np.zeros((img_size, img_size), np.float32)
    frame[:scaled.shape[0], :scaled.shape[1]] = scaled
    factor = img_size // lowres_size
    lowres = frame.reshape(lowres_size, factor, lowres_size, factor).mean(axis=(1, 3))
    return (lowres * 2.0 - 1.0) * 8.0


def sam_strategy(engine, window_level):
    """A Smart Propagation strategy builder (see SmartPropagationLib.algorithms.register_strategy)."""
    window, level = window_level

    def build(image_kji, seed_k, seed_mask_2d, spacing_kji):
        def predict(image_prev, mask_prev, image_next):
            rgb = window_to_rgb(image_next, window, level)
            key = ("propagation", hashlib.sha1(rgb.tobytes()).hexdigest(), rgb.shape)
            entry = engine.embed(key, rgb)
            rows, cols = np.nonzero(mask_prev)
            box = np.array([cols.min(), rows.min(), cols.max(), rows.max()], float)
            inside = ndimage.distance_transform_edt(np.pad(mask_prev, 1))[1:-1, 1:-1]
            row, col = np.unravel_index(int(np.argmax(inside)), inside.shape)
            logits = mask_to_lowres_logits(mask_prev, entry.input_size, *engine.frame_of(entry))
            prediction = engine.predict(key, np.array([[col, row]], float), np.array([1]), box,
                                        previous_logits=logits, multimask="never")
            return prediction.mask(0), float(prediction.scores[0])
        return predict
    return build


def register_sam_propagation(engine, window_level):
    """Make strategy "sam" available to Smart Propagation with this engine."""
    from SmartPropagationLib.algorithms import register_strategy
    register_strategy("sam", sam_strategy(engine, window_level))
