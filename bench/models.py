"""The three benchmark models of ../shared/BENCHMARKS.md in fastconv and (optionally) PyTorch/Keras."""
import numpy as np

import fastconv
from fastconv import layers as L

MODEL_INPUTS = {"lenet5": (28, 28, 1), "mnist_cnn": (28, 28, 1), "cifar_cnn": (32, 32, 3)}


def fastconv_model(name):
    if name == "lenet5":
        stack = [
            L.Conv2D(6, 5, padding="same", activation="tanh"), L.AveragePooling2D(2),
            L.Conv2D(16, 5, activation="tanh"), L.AveragePooling2D(2), L.Flatten(),
            L.Dense(120, activation="tanh"), L.Dense(84, activation="tanh"), L.Dense(10),
        ]
    elif name == "mnist_cnn":
        stack = [
            L.Conv2D(32, 3, padding="same"), L.BatchNormalization(), L.ReLU(), L.MaxPooling2D(2),
            L.Conv2D(64, 3, padding="same"), L.BatchNormalization(), L.ReLU(), L.MaxPooling2D(2),
            L.Flatten(), L.Dropout(0.5), L.Dense(128, activation="relu"), L.Dense(10),
        ]
    elif name == "cifar_cnn":
        stack = []
        for filters in (64, 128):
            for _ in range(2):
                stack += [L.Conv2D(filters, 3, padding="same"), L.BatchNormalization(), L.ReLU()]
            stack.append(L.MaxPooling2D(2))
        stack += [L.Flatten(), L.Dense(256, activation="relu"), L.Dropout(0.5), L.Dense(10)]
    else:
        raise ValueError(name)
    model = fastconv.Sequential(stack, input_shape=MODEL_INPUTS[name])
    model.compile(optimizer="adam",
                  loss=fastconv.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def torch_model(name):
    import torch.nn as nn

    if name == "lenet5":
        net = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2),
            nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, 10))
    elif name == "mnist_cnn":
        net = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Dropout(0.5), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))
    elif name == "cifar_cnn":
        mods, cin = [], 3
        for filters in (64, 128):
            for _ in range(2):
                mods += [nn.Conv2d(cin, filters, 3, padding=1), nn.BatchNorm2d(filters), nn.ReLU()]
                cin = filters
            mods.append(nn.MaxPool2d(2))
        mods += [nn.Flatten(), nn.Linear(128 * 8 * 8, 256), nn.ReLU(), nn.Dropout(0.5),
                 nn.Linear(256, 10)]
        net = nn.Sequential(*mods)
    else:
        raise ValueError(name)
    return net


def keras_model(name):
    import keras
    from keras import layers as K

    shape = MODEL_INPUTS[name]
    if name == "lenet5":
        stack = [K.Conv2D(6, 5, padding="same", activation="tanh"), K.AveragePooling2D(2),
                 K.Conv2D(16, 5, activation="tanh"), K.AveragePooling2D(2), K.Flatten(),
                 K.Dense(120, activation="tanh"), K.Dense(84, activation="tanh"), K.Dense(10)]
    elif name == "mnist_cnn":
        stack = [K.Conv2D(32, 3, padding="same"), K.BatchNormalization(), K.ReLU(), K.MaxPooling2D(2),
                 K.Conv2D(64, 3, padding="same"), K.BatchNormalization(), K.ReLU(), K.MaxPooling2D(2),
                 K.Flatten(), K.Dropout(0.5), K.Dense(128, activation="relu"), K.Dense(10)]
    else:
        stack = []
        for filters in (64, 128):
            for _ in range(2):
                stack += [K.Conv2D(filters, 3, padding="same"), K.BatchNormalization(), K.ReLU()]
            stack.append(K.MaxPooling2D(2))
        stack += [K.Flatten(), K.Dense(256, activation="relu"), K.Dropout(0.5), K.Dense(10)]
    model = keras.Sequential([keras.Input(shape)] + stack)
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def batch(name, n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n,) + MODEL_INPUTS[name]).astype(np.float32)
    y = rng.integers(0, 10, n)
    return x, y
