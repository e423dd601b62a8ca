"""Argument checking and shape arithmetic shared by `fastconv.ops` and `fastconv.reference`.

Every public entry point validates here, so the compiled kernels can assume valid, contiguous
input ("prior validation of data is assumed") and both backends reject the same bad input with
the same message.
"""
import numbers
from typing import NamedTuple

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
# Largest kernel size, stride, dilation or padding accepted: far beyond any real network, and
# small enough that the kernels' index arithmetic (ptrdiff_t) cannot overflow.
MAX_GEOMETRY_INT = 2**31 - 1


def _is_int(value):
    return isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, bool)


def normalize_tuple(value, n, name, *, allow_zero=False):
    """Return `value` as a tuple of `n` positive ints (an int is repeated `n` times)."""
    if isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, bool):
        values = (int(value),) * n
    else:
        try:
            values = tuple(value)
        except TypeError:
            values = None
        if (
            values is None
            or len(values) != n
            or not all(isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, bool)
                       for v in values)
        ):
            raise ValueError(
                f"The `{name}` argument must be an integer or a tuple of {n} integers. "
                f"Received {name}={value!r}"
            )
        values = tuple(int(v) for v in values)
    low = 0 if allow_zero else 1
    if any(v < low for v in values):
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(
            f"The `{name}` argument must contain only {kind} integers. Received {name}={value!r}"
        )
    if any(v > MAX_GEOMETRY_INT for v in values):
        raise ValueError(
            f"The `{name}` argument must contain integers <= {MAX_GEOMETRY_INT}. "
            f"Received {name}={value!r}"
        )
    return values


def as_float_array(x, name, dtype=None):
    """Return `x` as a float32/float64 ndarray.

    Other float dtypes are cast (float16 -> float32), integers become float64 (or `dtype`),
    and bool/complex/object/string input is refused. With `dtype`, the result has that dtype.
    """
    if type(x) is np.ndarray:  # the usual call (~40 per training step): no conversion at all
        dt = x.dtype
        if (dt is FLOAT_DTYPES[0] or dt is FLOAT_DTYPES[1]) and (dtype is None or dtype is dt):
            return x
    if isinstance(x, np.ndarray):
        arr = x
    else:
        try:
            arr = np.asarray(x)
        except Exception as exc:  # ragged lists and the like
            raise TypeError(f"`{name}` must be an array of numbers; could not convert: {exc}") from None
    kind = arr.dtype.kind
    if kind not in "fiu":
        raise TypeError(
            f"`{name}` must have a real float or integer dtype; received dtype {arr.dtype}."
        )
    if dtype is not None:
        return arr.astype(check_float_dtype(dtype), copy=False)
    if kind == "f":
        if arr.dtype in FLOAT_DTYPES:
            return arr
        return arr.astype(np.float32 if arr.dtype.itemsize < 4 else np.float64)
    return arr.astype(np.float64)


def check_seed64(seed, name="seed"):
    """`seed` as a Python int in [0, 2**64) (an int or NumPy integer, not a bool)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2 ** 64:
        raise ValueError(f"`{name}` must be an int in [0, 2**64); received {seed!r}.")
    return int(seed)


def check_bool(value, name):
    """`value` as a bool (True/False or a NumPy bool); TypeError otherwise."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"`{name}` must be True or False; received {value!r}.")


FUSED_ACTIVATIONS = (None, "relu", "tanh")


def check_fused_activation(value, name="activation"):
    """An activation a forward kernel applies to its output as it writes it: None, "relu" or
    "tanh"; ValueError otherwise."""
    if value is None or (type(value) is str and value in FUSED_ACTIVATIONS):
        return value
    raise ValueError(f"`{name}` must be None, 'relu' or 'tanh'; received {value!r}.")


def check_fused_max_pool(value, output_hw, name="max_pool"):
    """A max pooling a forward kernel applies to its output of spatial shape `output_hw`: None,
    or a positive int or a pair of positive ints (ph, pw) no larger than that shape, the
    windows (strides equal to them, no padding). Returns None or a tuple of two Python ints;
    ValueError otherwise."""
    if value is None:
        return None
    pair = (value, value) if isinstance(value, numbers.Integral) else value
    try:
        pair = tuple(pair)
    except TypeError:
        pair = ()
    if (len(pair) != 2 or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                                  and v > 0 for v in pair)):
        raise ValueError(f"`{name}` must be None, a positive int or a pair of positive ints; "
                         f"received {value!r}.")
    if pair[0] > output_hw[0] or pair[1] > output_hw[1]:
        raise ValueError(f"`{name}` windows {tuple(pair)} do not fit the convolution's output "
                         f"of spatial shape {tuple(output_hw)}.")
    return (int(pair[0]), int(pair[1]))


def check_float_dtype(dtype, name="dtype"):
    """Return the numpy dtype for a layer's `dtype=` argument (float32 or float64)."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"`{name}` must be 'float32' or 'float64'; received {dtype!r}.") from None
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"`{name}` must be 'float32' or 'float64'; received {dtype!r}.")
    return dt


def check_rank(arr, rank, name, layout):
    if arr.ndim != rank:
        raise ValueError(
            f"`{name}` must be a {rank}-D array {layout}; received shape {arr.shape}."
        )


def _check_finite_shape(arr, name):
    if 0 in arr.shape:
        raise ValueError(f"`{name}` must not have empty axes; received shape {arr.shape}.")


def resolve_padding(padding, in_hw, kernel_hw, strides, dilation, name="padding"):
    """Return explicit ((top, bottom), (left, right)) padding.

    `padding` is "valid", "same" (TensorFlow semantics: output = ceil(in / stride), the extra
    pixel, if any, at the bottom/right), an int, a pair (ph, pw) or ((top, bottom), (left, right)).
    """
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return ((0, 0), (0, 0))
        if mode == "same":
            pads = []
            for size, k, s, d in zip(in_hw, kernel_hw, strides, dilation):
                out = -(-size // s)
                eff = (k - 1) * d + 1
                total = max((out - 1) * s + eff - size, 0)
                pads.append((total // 2, total - total // 2))
            return tuple(pads)
        raise ValueError(
            f"The `{name}` argument must be 'valid', 'same', an int, a pair of ints or "
            f"((top, bottom), (left, right)). Received {name}={padding!r}"
        )
    if isinstance(padding, (numbers.Integral, np.integer)) and not isinstance(padding, bool):
        p = normalize_tuple(padding, 2, name, allow_zero=True)
        return ((p[0], p[0]), (p[1], p[1]))
    try:
        items = tuple(padding)
    except TypeError:
        items = None
    if items is not None and len(items) == 2:
        if all(isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, bool) for v in items):
            p = normalize_tuple(items, 2, name, allow_zero=True)
            return ((p[0], p[0]), (p[1], p[1]))
        try:
            tb = normalize_tuple(items[0], 2, name, allow_zero=True)
            lr = normalize_tuple(items[1], 2, name, allow_zero=True)
            return (tb, lr)
        except ValueError:
            pass
    raise ValueError(
        f"The `{name}` argument must be 'valid', 'same', an int, a pair of ints or "
        f"((top, bottom), (left, right)) of non-negative ints. Received {name}={padding!r}"
    )


class ConvGeometry(NamedTuple):
    """Resolved geometry of a 2-D convolution or pooling window on NHWC input."""

    n: int
    h: int
    w: int
    c: int
    kh: int
    kw: int
    out_h: int
    out_w: int
    strides: tuple
    padding: tuple  # ((top, bottom), (left, right))
    dilation: tuple

    @property
    def output_shape(self):
        return (self.n, self.out_h, self.out_w)


# Geometry resolution (padding, output size, argument normalisation) costs tens of
# microseconds of Python per call and a training step makes dozens of calls with the same
# shapes and arguments, so the results of valid calls are memoized. Keys hold each value's
# type next to it (also inside tuples), so 1, 1.0, True and np.int64(1) never share an entry
# and an argument rejected by type is always re-checked; invalid calls raise and are not
# stored; unhashable arguments skip the cache.
_MEMO = {}
_MEMO_MAX_ENTRIES = 512


def _typed_key(value):
    kind = type(value)
    if kind is int or kind is str:  # the common cases, kept cheap; never equal to a tuple key
        return value
    if kind is tuple or kind is list:
        types = tuple(map(type, value))
        if tuple not in types and list not in types:  # flat, e.g. a shape: types alongside
            return (kind, tuple(value), types)
        return (kind, tuple(_typed_key(v) for v in value))
    return (kind, value)


def _memoized(compute, *args):
    try:
        key = (compute,) + tuple(_typed_key(a) for a in args)
        result = _MEMO.get(key)
    except TypeError:  # an unhashable argument (e.g. an ndarray of strides)
        return compute(*args)
    if result is None:
        result = compute(*args)  # raises on invalid arguments: nothing is stored
        if len(_MEMO) >= _MEMO_MAX_ENTRIES:
            _MEMO.clear()
        _MEMO[key] = result
    return result


def cached_window_geometry(input_shape, kernel_hw, strides, padding, dilation, what="kernel"):
    """`window_geometry`, memoized (same result and same errors)."""
    return _memoized(_window_geometry_positional, input_shape, kernel_hw, strides, padding,
                     dilation, what)


def _window_geometry_positional(input_shape, kernel_hw, strides, padding, dilation, what):
    return window_geometry(input_shape, kernel_hw, strides, padding, dilation, what=what)


def window_geometry(input_shape, kernel_hw, strides, padding, dilation, *, what="kernel"):
    """Resolve padding and output size; raise if the window does not fit the padded input."""
    n, h, w, c = input_shape
    pads = resolve_padding(padding, (h, w), kernel_hw, strides, dilation)
    out = []
    for size, k, s, d, (p0, p1), axis in zip((h, w), kernel_hw, strides, dilation, pads,
                                             ("height", "width")):
        eff = (k - 1) * d + 1
        padded = size + p0 + p1
        if eff > padded:
            raise ValueError(
                f"The {what} (effective {axis} {eff} with dilation) is larger than the padded "
                f"input {axis} {padded}: input shape {tuple(input_shape)}, {what} size "
                f"{tuple(kernel_hw)}, padding {padding!r}."
            )
        out.append((padded - eff) // s + 1)
    return ConvGeometry(n, h, w, c, kernel_hw[0], kernel_hw[1], out[0], out[1],
                        tuple(strides), pads, tuple(dilation))


# Valid conv2d calls on arrays already of one float dtype, by shapes, dtype and the other
# arguments (typed as in _memoized): (geometry, groups). A training step checks every layer's
# convolution twice; the full checks cost ~15 us per call, this lookup ~2 us.
_CONV_CHECKED = {}


def check_conv2d(x, kernel, bias, strides, padding, dilation_rate, groups):
    """Validate conv2d arguments; return (x, kernel, bias, geometry, groups) in one dtype."""
    key = None
    if type(x) is np.ndarray and type(kernel) is np.ndarray and (bias is None or type(bias) is np.ndarray):
        dt = x.dtype
        if dt in FLOAT_DTYPES and kernel.dtype is dt and (bias is None or bias.dtype is dt):
            try:
                key = (x.shape, kernel.shape, None if bias is None else bias.shape, dt.char,
                       _typed_key(strides), _typed_key(padding), _typed_key(dilation_rate),
                       _typed_key(groups))
                hit = _CONV_CHECKED.get(key)
            except TypeError:  # an unhashable argument: the full checks
                key = hit = None
            if hit is not None:
                return x, kernel, bias, hit[0], hit[1]
    x, kernel, bias, geo, groups = _check_conv2d(x, kernel, bias, strides, padding, dilation_rate,
                                                 groups)
    if key is not None:
        if len(_CONV_CHECKED) >= _MEMO_MAX_ENTRIES:
            _CONV_CHECKED.clear()
        _CONV_CHECKED[key] = (geo, groups)
    return x, kernel, bias, geo, groups


def _check_conv2d(x, kernel, bias, strides, padding, dilation_rate, groups):
    x = as_float_array(x, "x")
    check_rank(x, 4, "x", "(batch, height, width, channels)")
    _check_finite_shape(x, "x")
    kernel = as_float_array(kernel, "kernel", x.dtype)
    check_rank(kernel, 4, "kernel", "(kernel_h, kernel_w, in_channels // groups, filters)")
    _check_finite_shape(kernel, "kernel")
    strides, dilation, groups = _memoized(_conv2d_arguments, x.shape, kernel.shape, strides,
                                          dilation_rate, groups)
    kh, kw, kc, filters = kernel.shape
    if bias is not None:
        bias = as_float_array(bias, "bias", x.dtype)
        if bias.shape != (filters,):
            raise ValueError(f"`bias` must have shape ({filters},); received {bias.shape}.")
    if strides != (1, 1) and dilation != (1, 1):
        raise ValueError(
            "`strides` > 1 together with `dilation_rate` > 1 is not supported (as in Keras). "
            f"Received strides={strides}, dilation_rate={dilation}."
        )
    geo = cached_window_geometry(x.shape, (kh, kw), strides, padding, dilation)
    return x, kernel, bias, geo, groups


def _conv2d_arguments(x_shape, kernel_shape, strides, dilation_rate, groups):
    """Normalized (strides, dilation, groups) of conv2d, checked against the shapes."""
    strides = normalize_tuple(strides, 2, "strides")
    dilation = normalize_tuple(dilation_rate, 2, "dilation_rate")
    if not isinstance(groups, (numbers.Integral, np.integer)) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"The `groups` argument must be a positive integer. Received groups={groups!r}")
    groups = int(groups)
    c = x_shape[3]
    kh, kw, kc, filters = kernel_shape
    if c % groups:
        raise ValueError(
            f"Input channels ({c}) must be divisible by `groups` ({groups}); x shape {x_shape}."
        )
    if filters % groups:
        raise ValueError(
            f"The number of filters ({filters}) must be divisible by `groups` ({groups})."
        )
    if kc != c // groups:
        raise ValueError(
            f"`kernel` must have shape (kh, kw, in_channels // groups = {c // groups}, filters); "
            f"received {kernel_shape} for x of shape {x_shape} and groups={groups}."
        )
    return strides, dilation, groups


def check_grad_output(dy, expected_shape, dtype, name="dy"):
    dy = as_float_array(dy, name, dtype)
    if tuple(dy.shape) != tuple(expected_shape):
        raise ValueError(f"`{name}` must have shape {tuple(expected_shape)}; received {dy.shape}.")
    return dy


def pool_geometry(input_shape, pool_size, strides, padding):
    """Geometry of pooling on an NHWC shape; `strides=None` means strides = pool_size (Keras)."""
    return _memoized(_pool_geometry, input_shape, pool_size, strides, padding)


def _pool_geometry(input_shape, pool_size, strides, padding):
    pool = normalize_tuple(pool_size, 2, "pool_size")
    strides = pool if strides is None else normalize_tuple(strides, 2, "strides")
    if not (isinstance(padding, str) and padding.lower() in ("valid", "same")):
        raise ValueError(f"The `padding` argument must be 'valid' or 'same'. Received padding={padding!r}")
    return window_geometry(input_shape, pool, strides, padding.lower(), (1, 1), what="pool window")


def check_pool2d(x, pool_size, strides, padding):
    """Validate pooling input and arguments; return (x, geometry)."""
    x = as_float_array(x, "x")
    check_rank(x, 4, "x", "(batch, height, width, channels)")
    _check_finite_shape(x, "x")
    return x, pool_geometry(x.shape, pool_size, strides, padding)


def check_input_shape(input_shape, rank, name="input_shape"):
    """Return `input_shape` as a tuple of `rank` positive Python ints (no float truncation)."""
    try:
        items = tuple(input_shape)
    except TypeError:
        items = None
    if items is None or isinstance(input_shape, (str, bytes)) or not all(_is_int(s) for s in items):
        raise ValueError(f"`{name}` must be a tuple of {rank} ints; received {input_shape!r}.")
    shape = tuple(int(s) for s in items)
    if len(shape) != rank or any(s < 1 for s in shape):
        raise ValueError(f"`{name}` must be a tuple of {rank} positive ints; received {input_shape!r}.")
    return shape


def check_global_pool(x):
    """Validate the NHWC input of a global pooling kernel."""
    x = as_float_array(x, "x")
    check_rank(x, 4, "x", "(batch, height, width, channels)")
    _check_finite_shape(x, "x")
    return x


def check_batch_norm(x, gamma, beta, epsilon):
    x = as_float_array(x, "x")
    if x.ndim < 2:
        raise ValueError(f"`x` must have at least 2 dimensions (batch, ..., channels); received shape {x.shape}.")
    _check_finite_shape(x, "x")
    c = x.shape[-1]
    gamma = as_float_array(gamma, "gamma", x.dtype)
    beta = as_float_array(beta, "beta", x.dtype)
    for arr, nm in ((gamma, "gamma"), (beta, "beta")):
        if arr.shape != (c,):
            raise ValueError(f"`{nm}` must have shape ({c},) (one value per channel); received {arr.shape}.")
    if (isinstance(epsilon, (bool, np.bool_)) or not isinstance(epsilon, numbers.Real)
            or not (epsilon > 0 and np.isfinite(epsilon))):
        raise ValueError(f"`epsilon` must be a positive finite number; received {epsilon!r}.")
    return x, gamma, beta, float(epsilon)


def check_channel_vector(v, c, dtype, name):
    v = as_float_array(v, name, dtype)
    if v.shape != (c,):
        raise ValueError(f"`{name}` must have shape ({c},); received {v.shape}.")
    return v


def check_dense(x, kernel, bias):
    x = as_float_array(x, "x")
    check_rank(x, 2, "x", "(batch, features)")
    _check_finite_shape(x, "x")
    kernel = as_float_array(kernel, "kernel", x.dtype)
    check_rank(kernel, 2, "kernel", "(in_features, units)")
    _check_finite_shape(kernel, "kernel")
    if kernel.shape[0] != x.shape[1]:
        raise ValueError(
            f"`kernel` must have shape (in_features={x.shape[1]}, units); received {kernel.shape}."
        )
    if bias is not None:
        bias = as_float_array(bias, "bias", x.dtype)
        if bias.shape != (kernel.shape[1],):
            raise ValueError(f"`bias` must have shape ({kernel.shape[1]},); received {bias.shape}.")
    return x, kernel, bias
