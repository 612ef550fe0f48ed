"""Pixel-wise cross-entropy with class weights and an ignore label (Caffe's SoftmaxWithLoss)."""

from __future__ import annotations

import numpy as np

from segnet_edge._tf import keras, tf


@keras.utils.register_keras_serializable(package="segnet_edge")
class WeightedPixelCrossEntropy(keras.losses.Loss):
    """Mean over non-void pixels of weight[label] * -log p[label]; the model outputs probabilities."""

    def __init__(self, class_weights, ignore_label: int | None = None, name: str = "pixel_ce", **kwargs):
        super().__init__(name=name, **kwargs)
        self.class_weights = [float(w) for w in np.asarray(class_weights).reshape(-1)]
        self.ignore_label = ignore_label

    def call(self, y_true, y_pred):
        num_classes = len(self.class_weights)
        labels = tf.cast(tf.reshape(y_true, tf.shape(y_pred)[:-1]), tf.int32)
        valid = labels < num_classes
        if self.ignore_label is not None:
            valid &= labels != self.ignore_label
        safe = tf.where(valid, labels, tf.zeros_like(labels))
        weights = tf.gather(tf.constant(self.class_weights, tf.float32), safe) * tf.cast(valid, tf.float32)
        probability = tf.gather(tf.cast(y_pred, tf.float32), safe, batch_dims=3)
        ce = -tf.math.log(tf.clip_by_value(probability, 1e-7, 1.0))
        count = tf.maximum(tf.reduce_sum(tf.cast(valid, tf.float32), axis=[1, 2]), 1.0)
        return tf.reduce_sum(weights * ce, axis=[1, 2]) / count

    def get_config(self):
        return {**super().get_config(), "class_weights": self.class_weights, "ignore_label": self.ignore_label}
