"""Training losses for the deep models: cross-entropy, or focal loss for class imbalance.

Models end in a probability layer (sigmoid for one binary unit, softmax otherwise); with the TensorFlow
backend Keras computes the cross-entropy from the logits behind it, so it stays numerically stable.
Keras is imported only when a loss is built.
"""

from __future__ import annotations

import numpy as np

FOCAL_GAMMA = 2.0


def balanced_alpha(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-class focal-loss weights ∝ 1 / class count, summing to 1 (absent classes get 0).

    For two classes this is the α-balanced form of Lin et al.: α = share of negatives for the
    positive class (class index 1), 1 − α for class 0.
    """
    counts = np.bincount(np.asarray(y, dtype=int), minlength=n_classes).astype(float)
    inv = np.divide(1.0, counts, out=np.zeros_like(counts), where=counts > 0)
    return inv / inv.sum()


def make_loss(strategy: str, *, n_classes: int, y_train: np.ndarray, gamma: float = FOCAL_GAMMA):
    """The loss for ``strategy``: focal loss (γ ``gamma``, balanced α) for ``"focal"``, else cross-entropy.

    ``y_train`` are the class indices the model is fitted on (after any resampling).
    """
    import keras

    if strategy == "focal":
        alpha = balanced_alpha(y_train, n_classes)
        if n_classes == 2:
            return keras.losses.BinaryFocalCrossentropy(
                apply_class_balancing=True, alpha=float(alpha[1]), gamma=gamma, name="focal_loss"
            )
        return keras.losses.CategoricalFocalCrossentropy(alpha=alpha.tolist(), gamma=gamma, name="focal_loss")
    if n_classes == 2:
        return keras.losses.BinaryCrossentropy()
    return keras.losses.CategoricalCrossentropy()
