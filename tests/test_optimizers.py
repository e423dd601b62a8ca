"""Optimizers: several steps on a known quadratic against NumPy versions of Keras 3's update
rules written here, in-place updates, state per parameter, options and errors."""
import math

import numpy as np
import pytest

from fastconv import optimizers

# f(w) = 0.5 * sum(a * w**2) + sum(b * w): gradient a * w + b, minimum at -b / a.
A = np.array([[1.0, 4.0, 0.5], [2.0, 0.25, 3.0]])
B = np.array([[0.5, -1.0, 0.2], [0.0, 1.5, -0.7]])
W0 = np.array([[1.5, -2.0, 0.3], [0.7, 2.2, -1.1]])


def quad_grad(w):
    return A * w + B


# -- reference update rules (plain NumPy, written from the Keras 3 source semantics) -------------
def ref_sgd(w, steps, lr, momentum=0.0, nesterov=False):
    w = w.copy()
    v = np.zeros_like(w)
    for _ in range(steps):
        g = quad_grad(w)
        if momentum == 0:
            w = w - lr * g
            continue
        v = momentum * v - lr * g
        w = w + (momentum * v - lr * g if nesterov else v)
    return w


def ref_adam(w, steps, lr, b1=0.9, b2=0.999, eps=1e-7, amsgrad=False):
    w = w.copy()
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    vmax = np.zeros_like(w)
    for t in range(1, steps + 1):
        g = quad_grad(w)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vmax = np.maximum(vmax, v)
        alpha = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        w = w - alpha * m / (np.sqrt(vmax if amsgrad else v) + eps)
    return w


def ref_rmsprop(w, steps, lr, rho=0.9, momentum=0.0, eps=1e-7, centered=False):
    w = w.copy()
    ms = np.zeros_like(w)
    mg = np.zeros_like(w)
    mom = np.zeros_like(w)
    for _ in range(steps):
        g = quad_grad(w)
        ms = rho * ms + (1 - rho) * g * g
        if centered:
            mg = rho * mg + (1 - rho) * g
            step = lr * g / np.sqrt(ms - mg * mg + eps)
        else:
            step = lr * g / np.sqrt(ms + eps)
        if momentum:
            mom = momentum * mom + step
            w = w - mom
        else:
            w = w - step
    return w


def ref_adagrad(w, steps, lr, init=0.1, eps=1e-7):
    w = w.copy()
    acc = np.full_like(w, init)
    for _ in range(steps):
        g = quad_grad(w)
        acc = acc + g * g
        w = w - lr * g / np.sqrt(acc + eps)
    return w


CASES = [
    ("sgd", lambda: optimizers.SGD(0.1), lambda w, n: ref_sgd(w, n, 0.1)),
    ("sgd momentum", lambda: optimizers.SGD(0.05, momentum=0.9),
     lambda w, n: ref_sgd(w, n, 0.05, 0.9)),
    ("sgd nesterov", lambda: optimizers.SGD(0.05, momentum=0.8, nesterov=True),
     lambda w, n: ref_sgd(w, n, 0.05, 0.8, True)),
    ("adam", lambda: optimizers.Adam(0.01), lambda w, n: ref_adam(w, n, 0.01)),
    ("adam amsgrad", lambda: optimizers.Adam(0.05, beta_1=0.8, beta_2=0.99, amsgrad=True),
     lambda w, n: ref_adam(w, n, 0.05, 0.8, 0.99, amsgrad=True)),
    ("rmsprop", lambda: optimizers.RMSprop(0.01), lambda w, n: ref_rmsprop(w, n, 0.01)),
    ("rmsprop centered momentum", lambda: optimizers.RMSprop(0.01, rho=0.8, momentum=0.5, centered=True),
     lambda w, n: ref_rmsprop(w, n, 0.01, 0.8, 0.5, centered=True)),
    ("adagrad", lambda: optimizers.Adagrad(0.1), lambda w, n: ref_adagrad(w, n, 0.1)),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_steps_match_reference_rule(case, dtype):
    _, make, reference = case
    opt = make()
    w = W0.astype(dtype)
    w_id = id(w)
    steps = 7
    for _ in range(steps):
        opt.apply_gradients([(quad_grad(w), w)])
    assert id(w) == w_id and w.dtype == dtype  # updated in place, dtype kept
    assert opt.iterations == steps
    expected = reference(W0, steps)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(w, expected, **tol)


@pytest.mark.parametrize("make, atol", [
    (lambda: optimizers.SGD(0.2, momentum=0.5), 1e-6),
    (lambda: optimizers.Adam(0.1), 2e-3),
    (lambda: optimizers.RMSprop(0.02), 0.02),  # normalised steps of ~lr keep it jittering
])
def test_converges_to_the_minimum(make, atol):
    opt = make()
    w = W0.copy()
    for _ in range(1500):
        opt.apply_gradients([(quad_grad(w), w)])
    np.testing.assert_allclose(w, -B / A, atol=atol)


def test_state_is_kept_per_parameter():
    # Two parameters stepped together must evolve exactly as if each had its own optimizer.
    opt = optimizers.Adam(0.05)
    w1, w2 = W0.copy(), np.array([3.0, -1.0])
    solo1, solo2 = optimizers.Adam(0.05), optimizers.Adam(0.05)
    s1, s2 = W0.copy(), w2.copy()
    for _ in range(5):
        opt.apply_gradients([(quad_grad(w1), w1), (2 * w2, w2)])
        solo1.apply_gradients([(quad_grad(s1), s1)])
        solo2.apply_gradients([(2 * s2, s2)])
    np.testing.assert_allclose(w1, s1, rtol=1e-14)
    np.testing.assert_allclose(w2, s2, rtol=1e-14)


def test_none_gradients_are_skipped():
    opt = optimizers.SGD(0.1)
    w, frozen = np.ones(3), np.ones(2)
    opt.apply_gradients([(np.ones(3), w), (None, frozen)])
    np.testing.assert_array_equal(frozen, np.ones(2))
    np.testing.assert_allclose(w, 0.9 * np.ones(3))


def test_learning_rate_is_settable_and_schedulable():
    opt = optimizers.SGD(0.1)
    w = np.array([1.0])
    opt.learning_rate = 0.5
    opt.apply_gradients([(np.array([1.0]), w)])
    assert w[0] == pytest.approx(0.5)
    sched = optimizers.SGD(lambda step: 0.1 / (step + 1))
    w = np.array([1.0])
    for _ in range(3):
        sched.apply_gradients([(np.array([1.0]), w)])
    assert w[0] == pytest.approx(1 - 0.1 - 0.05 - 0.1 / 3)
    assert sched.learning_rate == pytest.approx(0.025)


def test_gradient_clipping_and_weight_decay():
    g = np.array([3.0, 4.0])  # norm 5
    for kwargs, expected_step in [
        ({"clipnorm": 1.0}, g / 5),
        ({"clipvalue": 3.5}, np.array([3.0, 3.5])),
        ({"global_clipnorm": 2.5}, g / 2),
    ]:
        w = np.zeros(2)
        optimizers.SGD(1.0, **kwargs).apply_gradients([(g, w)])
        np.testing.assert_allclose(w, -expected_step)
    # Decoupled weight decay (Keras 3): w -= w * wd * lr before the update.
    w = np.array([2.0])
    optimizers.SGD(0.1, weight_decay=0.5).apply_gradients([(np.array([1.0]), w)])
    assert w[0] == pytest.approx(2.0 - 2.0 * 0.5 * 0.1 - 0.1)


def test_reset_state():
    opt = optimizers.SGD(0.1, momentum=0.9)
    w = np.array([1.0])
    opt.apply_gradients([(np.array([1.0]), w)])
    opt.reset_state()
    assert opt.iterations == 0
    w2 = np.array([1.0])
    opt.apply_gradients([(np.array([1.0]), w2)])
    assert w2[0] == pytest.approx(0.9)  # no momentum carried over


@pytest.mark.parametrize("name, cls", [("sgd", optimizers.SGD), ("adam", optimizers.Adam),
                                       ("RMSprop", optimizers.RMSprop), ("adagrad", optimizers.Adagrad)])
def test_get_by_name_with_keras_defaults(name, cls):
    opt = optimizers.get(name)
    assert type(opt) is cls
    assert opt.learning_rate == (0.01 if cls is optimizers.SGD else 0.001)
    assert optimizers.get(opt) is opt


def test_config_round_trip():
    opt = optimizers.Adam(0.003, beta_1=0.8, amsgrad=True, clipnorm=2.0)
    again = optimizers.deserialize(optimizers.serialize(opt))
    assert type(again) is optimizers.Adam and again.get_config() == opt.get_config()


def test_bad_arguments():
    with pytest.raises(ValueError, match="`learning_rate` must be a positive"):
        optimizers.SGD(-0.1)
    with pytest.raises(ValueError, match=r"`momentum` must be a number in \[0, 1\)"):
        optimizers.SGD(momentum=1.0)
    with pytest.raises(ValueError, match="beta_2"):
        optimizers.Adam(beta_2=1.5)
    with pytest.raises(ValueError, match="Unknown optimizer 'adamax'"):
        optimizers.get("adamax")
    with pytest.raises(TypeError, match="optimizer name"):
        optimizers.get(1.0)
    with pytest.raises(ValueError, match=r"gradient of shape \(2,\) was given for a parameter of shape \(3,\)"):
        optimizers.SGD().apply_gradients([(np.ones(2), np.ones(3))])
    with pytest.raises(TypeError, match="float NumPy arrays"):
        optimizers.SGD().apply_gradients([(np.ones(2), [1.0, 2.0])])
    opt = optimizers.SGD()
    with pytest.raises(ValueError, match="learning_rate"):
        opt.learning_rate = float("nan")
