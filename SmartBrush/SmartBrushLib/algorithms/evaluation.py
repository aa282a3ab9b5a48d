"""Pure evaluation loop for 2D brush models with the RITM simulated user (EVALUATION.md, brush tools).

A model factory takes (image_2d, spacing_ji) and returns an object with `add_stroke(mask_ji, label)` and
`predict() -> (labels_2d, probability_2d)`; label 1 is the object, 0 background.
"""
import time

import numpy as np

from MVAEvaluationLib.metrics import dice
from MVAEvaluationLib.simulated_user import DAB_RADIUS_VOXELS, SimulatedUser, dab_mask

from .errors import SmartBrushInputError
from .model import SliceBrushModel


def simulate_dabs(model_factory, image_2d, truth_2d, n=20, spacing_ji=(1.0, 1.0), radius=DAB_RADIUS_VOXELS):
    """Dice and update latency after each of `n` simulated dabs.

    Each interaction is one disk dab of `radius` voxels at the simulated click, positive (label 1) or
    negative (label 0) like the click; the model is updated and the whole image predicted; the next click
    comes from that prediction. When the user has nothing left to click, the last Dice is repeated.

    Returns
    -------
    dict with "dice" (list of n float), "seconds" (update latency per dab: add_stroke + predict) and
    "clicks" (list of Click).
    """
    image_2d = np.asarray(image_2d)
    truth_2d = np.asarray(truth_2d, bool)
    if image_2d.ndim != 2 or image_2d.shape != truth_2d.shape:
        raise SmartBrushInputError(f"Image {image_2d.shape} and truth {truth_2d.shape} must be equal 2D shapes")
    model = model_factory(image_2d, spacing_ji)
    user = SimulatedUser(truth_2d)
    click = user.first_click()
    scores, seconds, clicks = [], [], []
    while len(scores) < n:
        if click is None:
            scores.append(scores[-1])
            continue
        clicks.append(click)
        started = time.perf_counter()
        model.add_stroke(dab_mask(truth_2d.shape, click.index, radius), 1 if click.positive else 0)
        labels, _ = model.predict()
        seconds.append(time.perf_counter() - started)
        prediction = labels == 1
        scores.append(dice(prediction, truth_2d))
        click = user.next_click(prediction)
    return {"dice": scores, "seconds": seconds, "clicks": clicks}


class ForestBaseline:
    """Anchor: scikit-image multiscale_basic_features + RandomForest(100 trees, depth 10), refit per stroke.

    Until two labels are painted it uses the same similar-region fallback as the Smart Brush, so that both
    see comparable click sequences and differ only in features and classifier.
    """

    def __init__(self, image_ji, spacing_ji=(1.0, 1.0), n_estimators=100, max_depth=10, seed=0):
        from skimage.feature import multiscale_basic_features
        self.features = multiscale_basic_features(np.asarray(image_ji, np.float32))
        self.strokes = np.full(np.shape(image_ji), -1, np.int8)
        self.options = dict(n_estimators=n_estimators, max_depth=max_depth, random_state=seed, n_jobs=-1)
        self.fallback = SliceBrushModel(image_ji, spacing_ji, seed)

    def add_stroke(self, mask_ji, label):
        self.strokes[np.asarray(mask_ji, bool)] = label
        self.fallback.add_stroke(mask_ji, label)

    def predict(self):
        from sklearn.ensemble import RandomForestClassifier
        painted = self.strokes >= 0
        if len(np.unique(self.strokes[painted])) < 2:
            return self.fallback.predict()
        forest = RandomForestClassifier(**self.options)
        forest.fit(self.features[painted], self.strokes[painted])
        proba = forest.predict_proba(self.features.reshape(-1, self.features.shape[-1]))
        best = np.argmax(proba, axis=1)
        labels = forest.classes_[best].reshape(self.strokes.shape).astype(np.int32)
        return labels, proba.max(axis=1).reshape(self.strokes.shape).astype(np.float32)
