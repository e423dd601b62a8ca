"""AdamW, Nadam, gradient clipping and learning-rate schedules: several steps on a known
quadratic against NumPy versions of Keras 3's rules written here; schedules against their
formulas; schedules inside optimizers, `fit`, serialization and saved models."""
import json
import math

import numpy as np
import pytest

import fastconv
from fastconv import layers, optimizers
from fastconv.optimizers import schedules

# f(w) = 0.5 * sum(a * w**2) + sum(b * w): gradient a * w + b.
A = np.array([[1.0, 4.0, 0.5], [2.0, 0.25, 3.0]])
B = np.array([[0.5, -1.0, 0.2], [0.0, 1.5, -0.7]])
W0 = np.array([[1.5, -2.0, 0.3], [0.7, 2.2, -1.1]])


def quad_grad(w):
    return A * w + B


def constant(lr):
    return lambda step: lr


# -- reference rules -----------------------------------------------------------------------------
def ref_adamw(w, steps, lr, wd=0.004, b1=0.9, b2=0.999, eps=1e-7):
    """Adam on the gradient at the current point, after shrinking w by (1 - wd * lr)."""
    w = w.copy()
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t in range(1, steps + 1):
        g = quad_grad(w)
        w = w * (1.0 - wd * lr(t - 1))
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1 ** t)
        v_hat = v / (1 - b2 ** t)
        # Keras adds epsilon to sqrt(v), not sqrt(v_hat): eps / sqrt(1 - b2^t) here.
        w = w - lr(t - 1) * m_hat / (np.sqrt(v_hat) + eps / math.sqrt(1 - b2 ** t))
    return w


def ref_nadam(w, steps, lr, b1=0.9, b2=0.999, eps=1e-7):
    """Dozat's Nadam with the momentum schedule mu_t = b1 (1 - 0.5 * 0.96^t) (Keras 3)."""
    w = w.copy()
    m, v = np.zeros_like(w), np.zeros_like(w)
    mus = [None] + [b1 * (1 - 0.5 * 0.96 ** t) for t in range(1, steps + 2)]
    for t in range(1, steps + 1):
        g = quad_grad(w)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        prod_t = math.prod(mus[1:t + 1])
        m_hat = mus[t + 1] * m / (1 - prod_t * mus[t + 1]) + (1 - mus[t]) * g / (1 - prod_t)
        v_hat = v / (1 - b2 ** t)
        w = w - lr(t - 1) * m_hat / (np.sqrt(v_hat) + eps)
    return w


def ref_sgd(w, steps, lr, transform=lambda g: g):
    w = w.copy()
    for t in range(steps):
        w = w - lr(t) * transform(quad_grad(w))
    return w


CASES = [
    ("adamw default decay", lambda: optimizers.AdamW(0.01), lambda n: ref_adamw(W0, n, constant(0.01))),
    ("adamw strong decay", lambda: optimizers.AdamW(0.05, weight_decay=0.5, beta_1=0.8),
     lambda n: ref_adamw(W0, n, constant(0.05), wd=0.5, b1=0.8)),
    ("nadam", lambda: optimizers.Nadam(0.01), lambda n: ref_nadam(W0, n, constant(0.01))),
    ("nadam betas", lambda: optimizers.Nadam(0.03, beta_1=0.7, beta_2=0.95, epsilon=1e-4),
     lambda n: ref_nadam(W0, n, constant(0.03), 0.7, 0.95, 1e-4)),
    ("sgd exponential decay",
     lambda: optimizers.SGD(schedules.ExponentialDecay(0.2, decay_steps=3, decay_rate=0.5)),
     lambda n: ref_sgd(W0, n, lambda t: 0.2 * 0.5 ** (t / 3))),
    ("sgd piecewise", lambda: optimizers.SGD(schedules.PiecewiseConstantDecay([2, 5], [0.2, 0.1, 0.01])),
     lambda n: ref_sgd(W0, n, lambda t: 0.2 if t <= 2 else (0.1 if t <= 5 else 0.01))),
    ("adamw cosine warmup",
     lambda: optimizers.AdamW(schedules.CosineDecay(0.0, 6, warmup_target=0.05, warmup_steps=3)),
     lambda n: ref_adamw(W0, n, lambda t: 0.05 * t / 3 if t < 3
                         else 0.05 * 0.5 * (1 + math.cos(math.pi * min(t - 3, 6) / 6)))),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_steps_match_reference_rule(case, dtype):
    _, make, reference = case
    opt = make()
    w = W0.astype(dtype)
    steps = 9
    for _ in range(steps):
        opt.apply_gradients(zip([quad_grad(w)], [w]))
    assert w.dtype == dtype and opt.iterations == steps
    tol = dict(rtol=1e-11, atol=1e-12) if dtype == np.float64 else dict(rtol=3e-5, atol=3e-6)
    np.testing.assert_allclose(w, reference(steps), **tol)


def test_nadam_matches_the_keras_documentation_example():
    # keras.optimizers.Nadam(learning_rate=0.2) on loss = var1**2 / 2 from 10.0: "9.8".
    var = np.array([10.0])
    optimizers.Nadam(learning_rate=0.2).apply_gradients([(var.copy(), var)])
    assert f"{var[0]:.1f}" == "9.8"


@pytest.mark.parametrize("make", [lambda: optimizers.AdamW(0.05, weight_decay=0.0),
                                  lambda: optimizers.Nadam(0.05)])
def test_converges_to_the_minimum(make):
    opt = make()
    w = W0.copy()
    for _ in range(2000):
        opt.apply_gradients([(quad_grad(w), w)])
    np.testing.assert_allclose(w, -B / A, atol=5e-3)


def test_adamw_decay_shrinks_towards_zero_and_keras_defaults():
    opt = optimizers.get("adamw")
    assert type(opt) is optimizers.AdamW
    assert (opt.learning_rate, opt.weight_decay, opt.beta_1, opt.beta_2, opt.epsilon) == (
        0.001, 0.004, 0.9, 0.999, 1e-7)
    nadam = optimizers.get("Nadam")
    assert type(nadam) is optimizers.Nadam and nadam.learning_rate == 0.001
    # With a zero gradient only the decay acts: w *= (1 - wd * lr) per step.
    w = np.array([2.0, -4.0])
    decay_only = optimizers.AdamW(learning_rate=0.1, weight_decay=0.5)
    for _ in range(3):
        decay_only.apply_gradients([(np.zeros(2), w)])
    np.testing.assert_allclose(w, np.array([2.0, -4.0]) * 0.95 ** 3, rtol=1e-14)
    with pytest.raises(ValueError, match="weight_decay"):
        optimizers.AdamW(weight_decay=None)


def test_nadam_state_reset_and_shared_momentum_product():
    opt = optimizers.Nadam(0.01)
    w = W0.copy()
    for _ in range(4):
        opt.apply_gradients([(quad_grad(w), w)])
    opt.reset_state()
    w2 = W0.copy()
    for _ in range(3):
        opt.apply_gradients([(quad_grad(w2), w2)])
    np.testing.assert_allclose(w2, ref_nadam(W0, 3, constant(0.01)), rtol=1e-12)
    # Two parameters in one optimizer evolve exactly as each alone (one product per step).
    pair = optimizers.Nadam(0.02)
    a, b = W0.copy(), W0[0].copy() * 3
    solo_a, solo_b = W0.copy(), W0[0].copy() * 3
    opt_a, opt_b = optimizers.Nadam(0.02), optimizers.Nadam(0.02)
    for _ in range(5):
        pair.apply_gradients([(quad_grad(a), a), (2 * b, b)])
        opt_a.apply_gradients([(quad_grad(solo_a), solo_a)])
        opt_b.apply_gradients([(2 * solo_b, solo_b)])
    np.testing.assert_allclose(a, solo_a, rtol=1e-14)
    np.testing.assert_allclose(b, solo_b, rtol=1e-14)


# -- clipping --------------------------------------------------------------------------------------
def _clip_norm(g, c):
    n = math.sqrt(float((g ** 2).sum()))
    return g * c / n if n > c else g


@pytest.mark.parametrize("kwargs, transform", [
    ({"clipnorm": 0.5}, lambda g: _clip_norm(g, 0.5)),
    ({"clipvalue": 0.8}, lambda g: np.minimum(np.maximum(g, -0.8), 0.8)),
    ({"global_clipnorm": 0.7}, lambda g: _clip_norm(g, 0.7)),  # one parameter: same as clipnorm
])
def test_clipping_over_several_steps(kwargs, transform):
    opt = optimizers.SGD(0.3, **kwargs)
    w = W0.copy()
    for _ in range(6):
        opt.apply_gradients([(quad_grad(w), w)])
    np.testing.assert_allclose(w, ref_sgd(W0, 6, constant(0.3), transform), rtol=1e-13)


def test_global_clipnorm_uses_the_joint_norm():
    g1, g2 = np.array([3.0, 0.0]), np.array([[0.0], [4.0]])  # joint norm 5
    w1, w2 = np.zeros(2), np.zeros((2, 1))
    optimizers.SGD(1.0, global_clipnorm=2.0).apply_gradients([(g1, w1), (g2, w2)])
    np.testing.assert_allclose(w1, -g1 * 0.4)
    np.testing.assert_allclose(w2, -g2 * 0.4)
    # clipnorm instead rescales each gradient on its own.
    w1, w2 = np.zeros(2), np.zeros((2, 1))
    optimizers.SGD(1.0, clipnorm=2.0).apply_gradients([(g1, w1), (g2, w2)])
    np.testing.assert_allclose(w1, -g1 * 2 / 3)
    np.testing.assert_allclose(w2, -g2 * 0.5)


def test_only_one_clipping_option():
    with pytest.raises(ValueError, match="Only one of `clipnorm`, `clipvalue` and `global_clipnorm`"):
        optimizers.Adam(clipnorm=1.0, clipvalue=0.5)
    with pytest.raises(ValueError, match="Only one of"):
        optimizers.SGD(clipvalue=1.0, global_clipnorm=0.5)


def test_apply_is_keras_3_spelling():
    w = np.array([1.0, 2.0])
    opt = optimizers.SGD(0.5)
    opt.apply([np.array([1.0, 1.0])], [w])
    np.testing.assert_allclose(w, [0.5, 1.5])
    with pytest.raises(ValueError, match="same length"):
        opt.apply([np.ones(2)], [w, w])


# -- schedules against their formulas --------------------------------------------------------------
STEPS = list(range(0, 40)) + [57, 100, 1000]


def sgdr_reference(step, lr0, first, t_mul, m_mul, alpha):
    """Walk the restart periods one by one (no closed form)."""
    start, length, scale = 0.0, float(first), 1.0
    while step >= start + length:
        start += length
        length *= t_mul
        scale *= m_mul
    fraction = (step - start) / length
    # Keras: only the cosine part is scaled by m_mul^i; the floor alpha * lr0 is not.
    return lr0 * ((1 - alpha) * scale * 0.5 * (1 + math.cos(math.pi * fraction)) + alpha)


SCHEDULE_CASES = [
    ("exponential", schedules.ExponentialDecay(0.1, 7, 0.6), lambda s: 0.1 * 0.6 ** (s / 7)),
    ("exponential staircase", schedules.ExponentialDecay(0.1, 7, 0.6, staircase=True),
     lambda s: 0.1 * 0.6 ** (s // 7)),
    ("piecewise", schedules.PiecewiseConstantDecay([5, 10, 30], [1.0, 0.5, 0.25, 0.01]),
     lambda s: 1.0 if s <= 5 else 0.5 if s <= 10 else 0.25 if s <= 30 else 0.01),
    ("inverse time", schedules.InverseTimeDecay(0.2, 4, 0.5), lambda s: 0.2 / (1 + 0.5 * s / 4)),
    ("inverse time staircase", schedules.InverseTimeDecay(0.2, 4, 0.5, staircase=True),
     lambda s: 0.2 / (1 + 0.5 * (s // 4))),
    ("polynomial", schedules.PolynomialDecay(0.1, 20, 0.01, power=2.0),
     lambda s: (0.1 - 0.01) * (1 - min(s, 20) / 20) ** 2 + 0.01),
    ("polynomial cycle", schedules.PolynomialDecay(0.1, 20, 0.01, cycle=True),
     lambda s: (0.1 - 0.01) * (1 - s / (20 * max(1, math.ceil(s / 20)))) + 0.01),
    ("cosine", schedules.CosineDecay(0.1, 25),
     lambda s: 0.1 * 0.5 * (1 + math.cos(math.pi * min(s, 25) / 25))),
    ("cosine alpha", schedules.CosineDecay(0.1, 25, alpha=0.1),
     lambda s: 0.1 * (0.9 * 0.5 * (1 + math.cos(math.pi * min(s, 25) / 25)) + 0.1)),
    ("cosine warmup", schedules.CosineDecay(0.01, 20, alpha=0.05, warmup_target=0.2, warmup_steps=8),
     lambda s: 0.01 + (0.2 - 0.01) * s / 8 if s < 8
     else 0.2 * (0.95 * 0.5 * (1 + math.cos(math.pi * min(s - 8, 20) / 20)) + 0.05)),
    ("sgdr", schedules.CosineDecayRestarts(0.1, 5), lambda s: sgdr_reference(s, 0.1, 5, 2.0, 1.0, 0.0)),
    ("sgdr t_mul 1 m_mul", schedules.CosineDecayRestarts(0.1, 6, t_mul=1.0, m_mul=0.5, alpha=0.2),
     lambda s: 0.1 * (0.8 * 0.5 ** (s // 6) * 0.5 * (1 + math.cos(math.pi * (s % 6) / 6)) + 0.2)),
    ("sgdr all options", schedules.CosineDecayRestarts(0.3, 4, t_mul=1.5, m_mul=0.7, alpha=0.1),
     lambda s: sgdr_reference(s, 0.3, 4, 1.5, 0.7, 0.1)),
]


@pytest.mark.parametrize("name, schedule, formula", SCHEDULE_CASES, ids=[c[0] for c in SCHEDULE_CASES])
def test_schedule_matches_formula(name, schedule, formula):
    got = [schedule(s) for s in STEPS]
    np.testing.assert_allclose(got, [formula(s) for s in STEPS], rtol=1e-12, atol=1e-15)
    assert schedule(np.int64(3)) == pytest.approx(formula(3), rel=1e-12)  # NumPy step counts work
    # Serialization round trip gives the same schedule.
    rebuilt = schedules.deserialize(json.loads(json.dumps(schedules.serialize(schedule))))
    assert type(rebuilt) is type(schedule)
    assert [rebuilt(s) for s in STEPS] == got


def test_cosine_warmup_keras_example_shape():
    # Keras' docstring example: warm up from 0 to 0.1 in 1000 steps, then decay over 1000.
    schedule = schedules.CosineDecay(0, 1000, warmup_target=0.1, warmup_steps=1000)
    assert schedule(0) == 0 and schedule(500) == pytest.approx(0.05)
    assert schedule(1000) == pytest.approx(0.1) and schedule(1500) == pytest.approx(0.05)
    assert schedule(2000) == pytest.approx(0.0, abs=1e-18)
    assert schedule(5000) == pytest.approx(0.0, abs=1e-18)


def test_schedule_bad_arguments():
    with pytest.raises(ValueError, match="decay_steps` must be > 0"):
        schedules.ExponentialDecay(0.1, 0, 0.5)
    with pytest.raises(ValueError, match="length of boundaries should be 1 less"):
        schedules.PiecewiseConstantDecay([1, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="strictly increasing"):
        schedules.PiecewiseConstantDecay([5, 2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="initial_learning_rate"):
        schedules.CosineDecay(float("nan"), 10)
    with pytest.raises(ValueError, match="warmup_steps"):
        schedules.CosineDecay(0.0, 10, warmup_target=0.1)
    with pytest.raises(TypeError, match="staircase"):
        schedules.InverseTimeDecay(0.1, 10, 0.5, staircase="yes")
    with pytest.raises(ValueError, match="step"):
        schedules.ExponentialDecay(0.1, 10, 0.5)(-1)
    with pytest.raises(ValueError, match="Unknown learning-rate schedule"):
        schedules.deserialize({"class_name": "Constant", "config": {}})


# -- schedules in optimizers, fit, serialization ---------------------------------------------------
def test_optimizer_learning_rate_follows_the_schedule_and_is_not_settable():
    schedule = schedules.PiecewiseConstantDecay([1], [0.5, 0.1])
    opt = optimizers.SGD(learning_rate=schedule)
    w = np.array([1.0])
    rates = []
    for _ in range(3):
        rates.append(opt.learning_rate)
        opt.apply_gradients([(np.array([1.0]), w)])
    assert rates == [0.5, 0.5, 0.1]  # evaluated at iterations = 0, 1, 2
    np.testing.assert_allclose(w, [1.0 - 0.5 - 0.5 - 0.1])
    with pytest.raises(TypeError, match="LearningRateSchedule"):
        opt.learning_rate = 0.01
    opt.learning_rate = schedules.ExponentialDecay(1.0, 1, 0.5)  # another schedule is fine
    assert opt.learning_rate == 0.125


def test_optimizer_with_schedule_round_trips():
    opt = optimizers.Nadam(schedules.CosineDecay(0.01, 100, warmup_target=0.05, warmup_steps=10),
                           clipnorm=1.0)
    config = json.loads(json.dumps(optimizers.serialize(opt)))
    again = optimizers.deserialize(config)
    assert type(again) is optimizers.Nadam and isinstance(again._learning_rate, schedules.CosineDecay)
    assert again.get_config() == opt.get_config()
    adamw = optimizers.AdamW(0.002, weight_decay=0.01)
    assert optimizers.deserialize(optimizers.serialize(adamw)).get_config() == adamw.get_config()
    with pytest.raises(ValueError, match="plain callable"):
        optimizers.SGD(lambda step: 0.1).get_config()


def test_fit_with_a_schedule_and_saved_model(tmp_path):
    fastconv.utils.set_random_seed(1)
    model = fastconv.Sequential([layers.Dense(4, activation="relu"), layers.Dense(2, activation="softmax")],
                                input_shape=(3,))
    schedule = schedules.ExponentialDecay(0.05, decay_steps=2, decay_rate=0.5)
    model.compile(optimizer=optimizers.AdamW(schedule), loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(2).standard_normal((20, 3))
    y = (x[:, 0] > 0).astype(int)
    model.fit(x, y, batch_size=5, epochs=2, verbose=0)  # 4 steps per epoch
    assert model.optimizer.iterations == 8
    assert model.optimizer.learning_rate == pytest.approx(0.05 * 0.5 ** 4)
    loaded = fastconv.models.load_model(model.save(tmp_path / "sched.fcz"))
    assert type(loaded.optimizer) is optimizers.AdamW
    assert loaded.optimizer._learning_rate.get_config() == schedule.get_config()
    loaded.fit(x, y, batch_size=5, epochs=1, verbose=0)  # trains with the rebuilt schedule


def test_import_paths():
    from fastconv.optimizers.schedules import CosineDecay, ExponentialDecay

    assert (CosineDecay, ExponentialDecay) == (schedules.CosineDecay, schedules.ExponentialDecay)
    assert fastconv.optimizers.schedules.InverseTimeDecay is schedules.InverseTimeDecay
    assert isinstance(optimizers.get({"class_name": "AdamW", "config": {}}), optimizers.AdamW)
