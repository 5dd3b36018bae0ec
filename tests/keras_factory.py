"""A Keras model factory for a suite's ``[models.NAME] factory = "tests.keras_factory:build"`` (README example)."""


def build(*, input_shape, n_classes, filters=8):
    """Two-layer CNN: conv, pooling, sigmoid/softmax."""
    import keras  # inside the function: loading the suite does not import TensorFlow

    inputs = keras.Input(input_shape)
    x = keras.layers.Rescaling(1 / 255.0)(inputs)  # images arrive as RGB 0-255
    x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    units = 1 if n_classes == 2 else n_classes
    logits = keras.layers.Dense(units, name="logits")(x)
    probs = keras.layers.Activation("sigmoid" if n_classes == 2 else "softmax")(logits)
    return keras.Model(inputs, probs)


def not_a_model(*, input_shape, n_classes):
    """Returns something else than a Keras model."""
    return "model"


def wrong_output(*, input_shape, n_classes):
    """Three sigmoid units, whatever the number of classes."""
    import keras

    inputs = keras.Input(input_shape)
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    return keras.Model(inputs, keras.layers.Dense(3, activation="sigmoid")(x))


def no_shape(filters):
    """Does not take input_shape and n_classes."""


NOT_CALLABLE = 3
