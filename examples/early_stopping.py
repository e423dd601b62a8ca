"""Early stopping: stop training when the validation loss stops improving, keep the best weights.

A network much larger than its training set (here: two 256-unit dense layers on a few
hundred 8x8 digits) soon starts to memorise it: the training loss keeps falling while the
validation loss turns back up. `EarlyStopping(monitor="val_loss", patience=...,
restore_best_weights=True)` ends `fit` after `patience` epochs without improvement and puts
back the weights of the best epoch. The script prints the validation loss of every epoch,
marks the best one, and checks that the restored model scores exactly that best loss.

    python examples/early_stopping.py --quick
    python examples/early_stopping.py --train-samples 1000 --patience 10
"""
import argparse

import numpy as np

import fastconv
from fastconv.callbacks import EarlyStopping
from fastconv.datasets import digits
from fastconv.layers import Dense, Flatten

# examples/_common.py: Python puts the script's own folder on sys.path.
from _common import positive_int


def build_model(learning_rate):
    model = fastconv.Sequential([
        Flatten(),
        Dense(256, activation="relu"),
        Dense(256, activation="relu"),
        Dense(10, activation="softmax"),
    ], input_shape=(8, 8, 1), name="overfitting_mlp")
    model.compile(optimizer=fastconv.optimizers.Adam(learning_rate=learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds (it is quick anyway)")
    parser.add_argument("--train-samples", type=positive_int, default=300,
                        help="training digits (few, so that the network overfits)")
    parser.add_argument("--patience", type=positive_int, default=5)
    parser.add_argument("--max-epochs", type=positive_int, default=200)
    parser.add_argument("--learning-rate", type=float, default=1e-2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    max_epochs = min(args.max_epochs, 60) if args.quick else args.max_epochs
    fastconv.utils.set_random_seed(args.seed)

    (x_all, y_all), (x_test, y_test) = digits.load_data(seed=args.seed)
    x_train, y_train = x_all[:args.train_samples], y_all[:args.train_samples]
    x_val, y_val = x_all[-300:], y_all[-300:]  # held out from training
    if args.train_samples > len(x_all) - 300:
        parser.error(f"--train-samples must be at most {len(x_all) - 300}")
    print(f"{len(x_train)} training digits, {len(x_val)} for validation, {len(x_test)} for the "
          f"final test; at most {max_epochs} epochs, patience {args.patience}\n")

    model = build_model(args.learning_rate)
    stopper = EarlyStopping(monitor="val_loss", patience=args.patience, restore_best_weights=True)
    history = model.fit(x_train, y_train, batch_size=32, epochs=max_epochs, verbose=0,
                        validation_data=(x_val, y_val), callbacks=[stopper])

    val_loss = history.history["val_loss"]
    best = int(np.argmin(val_loss))
    print(f"{'epoch':>5} {'loss':>8} {'val_loss':>9} {'val_accuracy':>13}")
    for epoch, (loss, vloss, vacc) in enumerate(zip(history.history["loss"], val_loss,
                                                    history.history["val_accuracy"])):
        mark = "  <- best: these weights are restored" if epoch == best else ""
        print(f"{epoch + 1:5d} {loss:8.4f} {vloss:9.4f} {vacc:13.4f}{mark}")

    ran = len(val_loss)
    if ran < max_epochs:
        print(f"\nStopped after epoch {ran}: no improvement of val_loss for {args.patience} epochs "
              f"since epoch {best + 1}.")
    else:
        print(f"\nRan all {max_epochs} epochs: val_loss never went {args.patience} epochs "
              "without improving.")
    print(f"At the best epoch / at the last: training loss {history.history['loss'][best]:.4f} / "
          f"{history.history['loss'][-1]:.4f}, val_loss {val_loss[best]:.4f} / {val_loss[-1]:.4f}.")
    restored_loss, _ = model.evaluate(x_val, y_val, verbose=0)
    same = np.isclose(restored_loss, val_loss[best], rtol=1e-6, atol=0)
    print(f"Restored model: val_loss {restored_loss:.6f}, best epoch's {val_loss[best]:.6f} -> "
          f"{'identical' if same else 'DIFFERENT'}")
    test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"Test accuracy of the restored model: {test_accuracy:.2%} ({len(x_test)} digits)")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
