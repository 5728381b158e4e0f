"""Convolutional layers: ``Conv2D``, ``MaxPool2D``, ``AvgPool2D``, ``GlobalAvgPool2D``, and
``Flatten`` / ``Unflatten`` between images and feature vectors.

Images are ``(n, channels, height, width)`` arrays (PyTorch's NCHW). A convolution is one
matrix product over *columns* (im2col): every window the kernel visits is copied into one
column, so that the sum over the window becomes the inner dimension of a product with the
weights as a ``(F, C*kh*kw)`` matrix::

    y[n, f, i, j] = b[f] + sum_{c, p, q} W[f, c, p, q] * xp[n, c, i*s + p, j*s + q]

    cols[(c, p, q), (n, i, j)] = xp[n, c, i*s + p, j*s + q]          (C*kh*kw, n*Ho*Wo)
    Y = W.reshape(F, C*kh*kw) @ cols                                  (F, n*Ho*Wo)

where ``xp`` is ``x`` with ``padding`` zeros on every side and ``Ho = (H + 2*pad - kh) // s + 1``.
Backward, with ``G = dL/dY`` as ``(F, n*Ho*Wo)``: ``dW = G @ cols.T``, ``db = sum over
columns of G``, ``dcols = W.T @ G``, and ``dx`` is col2im(dcols): each column entry added back
to the input position it was copied from (a position in several windows collects from all).

Memory layout: ``Y`` comes out of the product channel-major, ``(F, n, Ho, Wo)`` in memory, and
is returned as its ``(n, F, Ho, Wo)`` transposed view, without a copy. NumPy's elementwise
functions keep that layout, so batch norm, ReLU and pooling work on it as it is, and the next
convolution's columns are gathered channel by channel from contiguous blocks. Nothing depends
on the layout: every layer takes any strides. :func:`conv2d_reference` is the same
convolution as plain loops over the formula, for the tests.

In training the column, padding and product buffers are reused from step to step
(:class:`~digitnet.nn.workspace.Workspace`); the backward pass writes ``dcols`` into the spent
column buffer (so ``backward`` runs once per ``forward``). In evaluation the batch is cut
into pieces of at most :data:`EVAL_COLUMN_ELEMENTS` column entries, so predicting thousands
of images never builds gigabytes of columns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .init import INITIALIZERS, Initializer
from .layers import LAYERS, Config, Layer, Shape, size_option
from .threads import over_blocks, thread_count

#: The most column entries one evaluation-mode product builds (64 MB of float32).
EVAL_COLUMN_ELEMENTS = 1 << 24

Pair = tuple[int, int]


def _pair(value: int | Sequence[int], what: str, low: int) -> Pair:
    """``3`` -> ``(3, 3)``; ``[3, 5]`` -> ``(3, 5)``; each at least ``low``."""
    values = (value, value) if isinstance(value, (int, np.integer)) and not isinstance(value, bool) \
        else tuple(value) if isinstance(value, (list, tuple)) else None
    if values is None or len(values) != 2 or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{what} must be a whole number or a pair of them, got {value!r}")
    if min(values) < low:
        raise ValueError(f"{what} must be >= {low}, got {value!r}")
    return int(values[0]), int(values[1])


def _plain(pair: Pair) -> int | list[int]:
    """A pair as the config writes it: one number when both are equal."""
    return pair[0] if pair[0] == pair[1] else list(pair)


def output_size(size: int, kernel: int, stride: int, padding: int = 0) -> int:
    """Positions a window of ``kernel`` visits along an axis of ``size`` (0 if it does not fit)."""
    return max((size + 2 * padding - kernel) // stride + 1, 0)


def _image_shape(name: str, input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(input_shape) != 3:
        raise ValueError(f"{name} takes images (channels, height, width), got inputs of shape "
                         f"{tuple(input_shape)}" + ("; an Unflatten layer turns feature vectors into images"
                                                    if len(input_shape) == 1 else ""))
    return input_shape  # type: ignore[return-value]


def _check_images(name: str, x: np.ndarray, channels: int | None = None) -> None:
    if x.ndim != 4 or (channels is not None and x.shape[1] != channels):
        want = f"(n, {channels}, height, width)" if channels is not None else "(n, channels, height, width)"
        raise ValueError(f"{name} expects images of shape {want}, got {x.shape}")


# --------------------------------------------------------------------------- im2col and col2im
def im2col(x: np.ndarray, kernel: Pair, stride: Pair, padding: Pair, *, out: np.ndarray | None = None,
           padded: np.ndarray | None = None) -> np.ndarray:
    """The windows of ``x (n, C, H, W)`` as columns: ``cols[(c, p, q), (n, i, j)] =
    xp[n, c, i*sh + p, j*sw + q]``, shape ``(C*kh*kw, n*Ho*Wo)``.

    ``out`` and ``padded`` (``(C, n, H + 2*ph, W + 2*pw)``) are buffers to write into. The copy
    is split by channels (or, for fewer channels than threads, by images) over the threads
    (:func:`~digitnet.nn.threads.over_blocks`)."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    ho, wo = output_size(h, kh, sh, ph), output_size(w, kw, sw, pw)
    cols = out if out is not None else np.empty((c * kh * kw, n * ho * wo), dtype=x.dtype)
    cols6 = cols.reshape(c, kh, kw, n, ho, wo)
    if (ph or pw) and padded is None:
        padded = np.empty((c, n, h + 2 * ph, w + 2 * pw), dtype=x.dtype)

    def gather(channels: slice, images: slice) -> None:
        source = x[images, channels].transpose(1, 0, 2, 3)
        if ph or pw:  # channel-major padded copy; the border is zero
            xp = padded[channels, images]
            xp[:, :, :ph], xp[:, :, h + ph:] = 0, 0
            xp[:, :, :, :pw], xp[:, :, :, w + pw:] = 0, 0
            xp[:, :, ph:h + ph, pw:w + pw] = source
            source = xp
        # (C, n, Ho, Wo, kh, kw): window (i, j) of channel c of image n, every stride-th one
        windows = sliding_window_view(source, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
        np.copyto(cols6[channels, :, :, images], windows.transpose(0, 4, 5, 1, 2, 3))

    if c >= thread_count():
        over_blocks(c, lambda block: gather(block, slice(None)), cols.size)
    else:
        over_blocks(n, lambda block: gather(slice(None), block), cols.size)
    return cols


def col2im(dcols: np.ndarray, x_shape: tuple[int, ...], kernel: Pair, stride: Pair, padding: Pair, *,
           padded: np.ndarray | None = None) -> np.ndarray:
    """The adjoint of :func:`im2col`: ``dx[n, c, i*sh + p, j*sw + q] += dcols[(c, p, q), (n, i, j)]``
    for every window, cropped of the padding. Returns an ``(n, C, H, W)`` view of the
    channel-major ``padded`` buffer (made if not given). Split by channels over the threads."""
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    ho, wo = output_size(h, kh, sh, ph), output_size(w, kw, sw, pw)
    dxp = padded if padded is not None else np.empty((c, n, h + 2 * ph, w + 2 * pw), dtype=dcols.dtype)
    d = dcols.reshape(c, kh, kw, n, ho, wo)

    def scatter(channels: slice) -> None:
        part = dxp[channels]
        part[...] = 0
        for p in range(kh):
            for q in range(kw):
                part[:, :, p:p + sh * ho:sh, q:q + sw * wo:sw] += d[channels, p, q]

    over_blocks(c, scatter, dcols.size)
    return dxp[:, :, ph:ph + h, pw:pw + w].transpose(1, 0, 2, 3)


def conv2d_reference(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, stride: Pair,
                     padding: Pair) -> np.ndarray:
    """The convolution as loops over its formula (slow; the tests compare :class:`Conv2D` with it)::

        y[n, f, i, j] = b[f] + sum_{c, p, q} W[f, c, p, q] * xp[n, c, i*sh + p, j*sw + q]
    """
    n, c, h, w = x.shape
    f, _, kh, kw = weight.shape
    (sh, sw), (ph, pw) = stride, padding
    xp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=np.float64)
    xp[:, :, ph:ph + h, pw:pw + w] = x
    ho, wo = output_size(h, kh, sh, ph), output_size(w, kw, sw, pw)
    y = np.zeros((n, f, ho, wo))
    for b in range(n):
        for k in range(f):
            for i in range(ho):
                for j in range(wo):
                    total = 0.0 if bias is None else float(bias[k])
                    for ch in range(c):
                        for p in range(kh):
                            for q in range(kw):
                                total += weight[k, ch, p, q] * xp[b, ch, i * sh + p, j * sw + q]
                    y[b, k, i, j] = total
    return y


# --------------------------------------------------------------------------- layers
@LAYERS.register()
class Conv2D(Layer):
    """2-D convolution (cross-correlation, as in every framework) by im2col and one matrix product.

    Shapes: x ``(n, C, H, W)``, W ``(F, C, kh, kw)``, b ``(F,)``, y ``(n, F, Ho, Wo)`` with
    ``Ho = (H + 2*padding - kh) // stride + 1`` (likewise ``Wo``). ``kernel_size``, ``stride`` and
    ``padding`` are a number or a ``[height, width]`` pair; ``bias=False`` drops ``b`` (a
    convolution followed by batch norm does not need one).

    Forward: ``y[n, f, i, j] = b[f] + sum_{c,p,q} W[f, c, p, q] * xp[n, c, i*s + p, j*s + q]``,
    computed as ``Y = W.reshape(F, -1) @ cols`` (see :mod:`digitnet.nn.conv`).
    Gradients, with ``G = dL/dY`` as ``(F, n*Ho*Wo)``: ``dW = G @ cols.T``, ``db = sum G``,
    ``dx = col2im(W.T @ G)``, or at stride 1, where it is cheaper, the same ``dx`` as a
    convolution of ``G`` with the kernel turned by 180 degrees.

    Initialisers see the weight shape ``(F, C, kh, kw)``: fan-in ``C*kh*kw``, fan-out ``F*kh*kw``.
    """

    input_ndim = 3

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int] = 3,
        *,
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] = 0,
        bias: bool = True,
        weight_init: str | dict | Initializer = "he_normal",
        bias_init: str | dict | Initializer = "zeros",
        rng: np.random.Generator | None = None,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        if int(in_channels) < 1 or int(out_channels) < 1:
            raise ValueError(f"Conv2D needs positive channel counts, got {in_channels}->{out_channels}")
        rng = rng if rng is not None else np.random.default_rng()
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = _pair(kernel_size, "kernel_size", 1)
        self.stride = _pair(stride, "stride", 1)
        self.padding = _pair(padding, "padding", 0)
        self.use_bias = bool(bias)
        self.weight_init = INITIALIZERS.create(weight_init)
        self.bias_init = INITIALIZERS.create(bias_init)
        self.dtype = np.dtype(dtype)
        shape = (self.out_channels, self.in_channels, *self.kernel_size)
        self.params["weight"] = self.weight_init(shape, rng, self.dtype)
        self.grads["weight"] = np.zeros(shape, dtype=self.dtype)
        if self.use_bias:
            self.params["bias"] = self.bias_init((self.out_channels,), rng, self.dtype)
            self.grads["bias"] = np.zeros(self.out_channels, dtype=self.dtype)
        self._cols: np.ndarray | None = None
        self._buffer: np.ndarray | None = None

    @classmethod
    def infer(cls, config: Config, input_shape: Shape) -> tuple[Config, Shape]:
        c, h, w = _image_shape("Conv2D", input_shape)
        config = {**config, "in_channels": config.get("in_channels", c)}
        if config["in_channels"] != c:
            raise ValueError(f"in_channels is {config['in_channels']!r}, but its input has {c} channels")
        (kh, kw), (sh, sw), (ph, pw) = (_pair(config.get("kernel_size", 3), "kernel_size", 1),
                                        _pair(config.get("stride", 1), "stride", 1),
                                        _pair(config.get("padding", 0), "padding", 0))
        ho, wo = output_size(h, kh, sh, ph), output_size(w, kw, sw, pw)
        if ho < 1 or wo < 1:
            raise ValueError(f"a {kh}x{kw} kernel with padding {_plain((ph, pw))} does not fit "
                             f"{h}x{w} images")
        return config, (size_option(config, "out_channels"), ho, wo)

    def _out_hw(self, h: int, w: int) -> Pair:
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return output_size(h, kh, sh, ph), output_size(w, kw, sw, pw)

    def forward(self, x: np.ndarray) -> np.ndarray:
        _check_images(f"Conv2D({self.in_channels}->{self.out_channels})", x, self.in_channels)
        x = x.astype(self.dtype, copy=False)
        n, c, h, w = x.shape
        ho, wo = self._out_hw(h, w)
        if ho < 1 or wo < 1:
            raise ValueError(f"Conv2D's {self.kernel_size[0]}x{self.kernel_size[1]} kernel does not fit "
                             f"{h}x{w} images")
        f, k = self.out_channels, c * self.kernel_size[0] * self.kernel_size[1]
        w2 = self.params["weight"].reshape(f, k)
        self._x_shape = x.shape
        if self.training:
            padded = self.reuse("xp", (c, n, h + 2 * self.padding[0], w + 2 * self.padding[1]), self.dtype)
            # one buffer for the columns and, in backward, the gradient's columns (the larger of two)
            room = k * n * ho * wo
            if self._input_grad_is_a_convolution(h, w):
                room = max(room, f * self.kernel_size[0] * self.kernel_size[1] * n * h * w)
            self._buffer = self.reuse("cols", (room,), self.dtype)
            cols = im2col(x, self.kernel_size, self.stride, self.padding,
                          out=self._buffer[:k * n * ho * wo].reshape(k, -1), padded=padded)
            self._x, self._cols = None, cols
            y = np.matmul(w2, cols, out=self.reuse("y", (f, n * ho * wo), self.dtype))  # Y = W @ cols
        else:  # in pieces of images, never keeping the columns
            self._x, self._cols = x, None
            y = np.empty((f, n * ho * wo), dtype=self.dtype)
            step = max(1, EVAL_COLUMN_ELEMENTS // (k * ho * wo))
            for i in range(0, n, step):
                cols = im2col(x[i:i + step], self.kernel_size, self.stride, self.padding)
                y[:, i * ho * wo:(i + step) * ho * wo] = w2 @ cols
        if self.use_bias:
            y += self.params["bias"][:, None]
        return y.reshape(f, n, ho, wo).transpose(1, 0, 2, 3)

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        n, c, h, w = self._x_shape
        f = self.out_channels
        g = grad_out.transpose(1, 0, 2, 3).reshape(f, -1)  # G (F, n*Ho*Wo); a view when channel-major
        cols = self._cols
        if cols is None:
            if self._x is None:
                raise RuntimeError("Conv2D.backward runs once per forward (its columns are spent)")
            cols = im2col(self._x, self.kernel_size, self.stride, self.padding)
        # dW = G @ cols.T, computed as its transpose cols @ G.T: BLAS splits that product's work
        # across threads well, where the long inner dimension of G @ cols.T leaves them idle
        dw_t = np.matmul(cols, g.T, out=self.reuse("dw_t", (cols.shape[0], f), self.dtype))
        self.grads["weight"].reshape(f, -1)[...] = dw_t.T
        if self.use_bias:
            np.add.reduce(g, axis=1, out=self.grads["bias"])  # db = sum of G over every position
        self._cols = None
        if not need_input_grad:
            return None
        spent = self._buffer if self.training else None  # the columns' buffer, free to write now
        if self._input_grad_is_a_convolution(h, w):
            return self._input_grad_by_convolution(grad_out, spent)
        dcols = np.matmul(self.params["weight"].reshape(f, -1).T, g, out=cols)  # dcols = W.T @ G
        padded = self.reuse("dxp", (c, n, h + 2 * self.padding[0], w + 2 * self.padding[1]), self.dtype)
        return col2im(dcols, self._x_shape, self.kernel_size, self.stride, self.padding, padded=padded)

    def _input_grad_is_a_convolution(self, h: int, w: int) -> bool:
        """Whether ``dx`` is computed as a convolution of ``g`` (possible at stride 1 with
        padding below the kernel size) rather than by col2im: when its columns, ``F*kh*kw``
        per input position, are no more than col2im's ``C*kh*kw`` per output position (a
        convolution that keeps the image size and the channel count, such as 32 -> 32 3x3
        with padding 1); a convolution that shrinks the image or widens the channels (LeNet's
        6 -> 16 5x5) is cheaper through col2im."""
        (kh, kw), (ph, pw) = self.kernel_size, self.padding
        if self.stride != (1, 1) or ph >= kh or pw >= kw:
            return False
        ho, wo = self._out_hw(h, w)
        return self.out_channels * h * w <= self.in_channels * ho * wo

    def _input_grad_by_convolution(self, grad_out: np.ndarray, spent: np.ndarray | None) -> np.ndarray:
        """``dx`` at stride 1, as a convolution of ``g`` with the kernel turned by 180 degrees
        (input and output channels swapped), padded by ``k - 1 - padding``::

            dx[n, c, h, w] = sum_{f, p, q} W[f, c, kh-1-p, kw-1-q] * gp[n, f, h + p, w + q]

        The same numbers as col2im(W.T @ G), but its product has the long ``F*kh*kw`` inner
        dimension of a forward pass instead of writing ``C*kh*kw`` values per position."""
        n, c, h, w = self._x_shape
        (kh, kw), (ph, pw) = self.kernel_size, self.padding
        turned = self.params["weight"][:, :, ::-1, ::-1].transpose(1, 0, 2, 3).reshape(c, -1)  # (C, F*kh*kw)
        size = turned.shape[1] * n * h * w
        out = spent[:size].reshape(turned.shape[1], n * h * w) if spent is not None and spent.size >= size \
            else None
        gcols = im2col(grad_out, self.kernel_size, (1, 1), (kh - 1 - ph, kw - 1 - pw), out=out,
                       padded=self.reuse("gp", (self.out_channels, n, grad_out.shape[2] + 2 * (kh - 1 - ph),
                                                grad_out.shape[3] + 2 * (kw - 1 - pw)), self.dtype))
        dx = np.matmul(turned, gcols, out=self.reuse("dx", (c, n * h * w), self.dtype))
        return dx.reshape(c, n, h, w).transpose(1, 0, 2, 3)

    def config(self) -> dict[str, Any]:
        return {"type": self.name, "in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": _plain(self.kernel_size), "stride": _plain(self.stride),
                "padding": _plain(self.padding), "bias": self.use_bias,
                "weight_init": self.weight_init.config(), "bias_init": self.bias_init.config()}


class _Pool2D(Layer):
    """Shared by the pooling layers: a ``kernel_size`` window moved by ``stride`` (default: the
    kernel, so windows tile the image), no padding; rows and columns left over are dropped."""

    input_ndim = 3

    def __init__(self, kernel_size: int | Sequence[int] = 2, *, stride: int | Sequence[int] | None = None
                 ) -> None:
        super().__init__()
        self.kernel_size = _pair(kernel_size, "kernel_size", 1)
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride", 1)

    @classmethod
    def infer(cls, config: Config, input_shape: Shape) -> tuple[Config, Shape]:
        c, h, w = _image_shape(cls.name, input_shape)
        kh, kw = _pair(config.get("kernel_size", 2), "kernel_size", 1)
        stride = config.get("stride")
        sh, sw = (kh, kw) if stride is None else _pair(stride, "stride", 1)
        ho, wo = output_size(h, kh, sh), output_size(w, kw, sw)
        if ho < 1 or wo < 1:
            raise ValueError(f"a {kh}x{kw} window does not fit {h}x{w} images")
        return config, (c, ho, wo)

    def _windows(self, x: np.ndarray) -> tuple[Pair, list[tuple[int, int, np.ndarray]]]:
        """``(Ho, Wo)`` and, for each offset ``(p, q)`` in the window, the view
        ``x[:, :, i*sh + p, j*sw + q]`` over all ``(i, j)``: ``(n, C, Ho, Wo)``."""
        _check_images(self.name, x)
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        ho, wo = output_size(x.shape[2], kh, sh), output_size(x.shape[3], kw, sw)
        if ho < 1 or wo < 1:
            raise ValueError(f"{self.name}'s {kh}x{kw} window does not fit {x.shape[2]}x{x.shape[3]} images")
        views = [(p, q, x[:, :, p:p + sh * (ho - 1) + 1:sh, q:q + sw * (wo - 1) + 1:sw])
                 for p in range(kh) for q in range(kw)]
        return (ho, wo), views

    def _scatter(self, pieces: list[tuple[int, int, np.ndarray]], like: np.ndarray) -> np.ndarray:
        """``dx`` shaped (and laid out) like ``like``: each piece added at its window offset."""
        (sh, sw) = self.stride
        dx = np.zeros_like(like)
        for p, q, piece in pieces:
            ho, wo = piece.shape[2:]
            dx[:, :, p:p + sh * (ho - 1) + 1:sh, q:q + sw * (wo - 1) + 1:sw] += piece
        return dx

    def config(self) -> dict[str, Any]:
        return {"type": self.name, "kernel_size": _plain(self.kernel_size), "stride": _plain(self.stride)}


@LAYERS.register()
class MaxPool2D(_Pool2D):
    """Max pooling: ``y[n, c, i, j] = max_{p, q} x[n, c, i*sh + p, j*sw + q]`` over a ``kh x kw``
    window; x ``(n, C, H, W)``, y ``(n, C, Ho, Wo)``, ``Ho = (H - kh) // sh + 1``.

    Backward: each output's gradient goes to the input that was the maximum (the first one, in
    row-major window order, when several tie, as PyTorch does):
    ``dx[n, c, i*sh + p, j*sw + q] += g[n, c, i, j]`` for that ``(p, q)``.

    Windows that tile the image (stride = kernel, the usual 2x2) are reduced in two steps over
    long runs of memory: the maximum of each window row (``kw`` neighbours), then the maximum
    of those over the window's ``kh`` rows; the first maximum of the first maximal row is the
    first in row-major order. Other windows go offset by offset.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        tiles = _tiled(x, self.kernel_size, self.stride)
        self._tiles = None if tiles is None else tiles[1]
        if tiles is None:
            _, views = self._windows(x)
            y = np.empty_like(views[0][2])
            self._argmax = np.empty(y.shape, dtype=bool if len(views) == 2 else np.uint8)
            _first_max([v for _, _, v in views], y, self._argmax)
            return y
        xm, back = tiles
        (kh, kw), (b0, b1, h, w) = self.kernel_size, xm.shape
        wo = w // kw
        y = np.empty((b0, b1, h // kh, wo), dtype=x.dtype)
        along_w = np.empty((b0, b1 * h * wo), dtype=bool if kw == 2 else np.uint8)
        along_h = np.empty((b0, b1 * (h // kh) * wo), dtype=bool if kh == 2 else np.uint8)

        def pool(block: slice) -> None:  # the windows of a block of images (or channels)
            rows = xm[block].reshape(-1, kw)  # one window row per row
            row_max = np.empty(len(rows), dtype=x.dtype)
            _first_max([rows[:, q] for q in range(kw)], row_max, along_w[block].reshape(-1))
            row_max = row_max.reshape(-1, kh, wo)  # (rows of windows, kh, Wo)
            _first_max([row_max[:, p] for p in range(kh)], y[block].reshape(-1, wo),
                       along_h[block].reshape(-1, wo))

        over_blocks(b0, pool, x.size)
        self._along_w, self._along_h = along_w, along_h
        return y.transpose(back)

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray:
        if self._tiles is None:
            _, views = self._windows(self._x)
            return self._scatter([(p, q, grad_out * _one_hot_part(self._argmax, k))
                                  for k, (p, q, _) in enumerate(views)], self._x)
        kh, kw = self.kernel_size
        g = np.ascontiguousarray(grad_out.transpose(self._tiles))  # in the input's memory order
        b0, b1, _, wo = g.shape
        dx = np.empty((b0, b1, *self._x.shape[2:]), dtype=g.dtype)
        along_w_all, along_h_all = self._along_w, self._along_h

        def unpool(block: slice) -> None:
            gb = g[block].reshape(-1, wo)
            to_rows = np.empty((len(gb), kh, wo), dtype=g.dtype)  # the gradient of each row's maximum
            along_h = along_h_all[block].reshape(-1, wo)
            for p in range(kh):
                np.multiply(gb, _one_hot_part(along_h, p), out=to_rows[:, p])
            to_rows, along_w = to_rows.reshape(-1), along_w_all[block].reshape(-1)
            out = dx[block].reshape(-1, kw)
            for q in range(kw):
                np.multiply(to_rows, _one_hot_part(along_w, q), out=out[:, q])

        over_blocks(b0, unpool, dx.size)
        return dx.transpose(self._tiles)


@LAYERS.register()
class AvgPool2D(_Pool2D):
    """Average pooling: ``y[n, c, i, j] = mean_{p, q} x[n, c, i*sh + p, j*sw + q]`` over a
    ``kh x kw`` window; x ``(n, C, H, W)``, y ``(n, C, Ho, Wo)``.

    Backward: ``dx[n, c, i*sh + p, j*sw + q] += g[n, c, i, j] / (kh * kw)`` for every offset.
    Tiling windows are summed row by row, as in :class:`MaxPool2D`.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        kh, kw = self.kernel_size
        tiles = _tiled(x, self.kernel_size, self.stride)
        self._tiles = None if tiles is None else tiles[1]
        if tiles is None:
            _, views = self._windows(x)
            y = views[0][2].copy(order="K")
            for _, _, v in views[1:]:
                y += v
            y *= 1.0 / len(views)
            return y
        xm, back = tiles
        b0, b1, h, w = xm.shape
        wo = w // kw
        y = np.empty((b0, b1, h // kh, wo), dtype=x.dtype)

        def pool(block: slice) -> None:
            rows = xm[block].reshape(-1, kw)
            row_sum = rows[:, 0].copy()
            for q in range(1, kw):
                row_sum += rows[:, q]
            row_sum = row_sum.reshape(-1, kh, wo)
            out = y[block].reshape(-1, wo)
            np.copyto(out, row_sum[:, 0])
            for p in range(1, kh):
                out += row_sum[:, p]
            out *= 1.0 / (kh * kw)

        over_blocks(b0, pool, x.size)
        return y.transpose(back)

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray:
        kh, kw = self.kernel_size
        share = grad_out * (1.0 / (kh * kw))
        if self._tiles is None:
            _, views = self._windows(self._x)
            return self._scatter([(p, q, share) for p, q, _ in views], self._x)
        g = np.ascontiguousarray(share.transpose(self._tiles))
        b0, b1, _, wo = g.shape
        dx = np.empty((b0, b1, *self._x.shape[2:]), dtype=g.dtype)
        dx.reshape(b0, -1, kh, wo, kw)[...] = g.reshape(b0, -1, 1, wo, 1)  # every input of a window
        return dx.transpose(self._tiles)


def _tiled(x: np.ndarray, kernel: Pair, stride: Pair) -> tuple[np.ndarray, tuple[int, ...]] | None:
    """When windows tile ``x`` (stride = kernel, dividing its height and width) and its memory
    holds whole images (NCHW or channel-major CNHW order): ``(xm, back)``, a C-contiguous view
    of ``x`` with its axes in memory order, and the transpose that turns ``xm`` back into ``x``.
    Otherwise None."""
    if kernel != stride or x.ndim != 4 or x.shape[2] % kernel[0] or x.shape[3] % kernel[1]:
        return None
    if x.flags.c_contiguous:
        return x, (0, 1, 2, 3)
    xt = x.transpose(1, 0, 2, 3)
    return (xt, (1, 0, 2, 3)) if xt.flags.c_contiguous else None


def _first_max(parts: list[np.ndarray], best: np.ndarray, index: np.ndarray) -> None:
    """Into ``best`` the elementwise maximum of equally shaped arrays, into ``index`` which of
    them holds it, the first one on a tie (``index`` is bool for two arrays, uint8 for more)."""
    if len(parts) == 2:
        np.greater(parts[1], parts[0], out=index)
        np.maximum(parts[0], parts[1], out=best)
        return
    np.copyto(best, parts[0])
    index[...] = 0
    for i, v in enumerate(parts[1:], start=1):
        better = v > best
        np.maximum(best, v, out=best)
        np.copyto(index, i, where=better)


def _one_hot_part(index: np.ndarray, k: int) -> np.ndarray:
    """Where :func:`_first_max`'s ``index`` chose part ``k`` (the bool itself for two parts)."""
    if index.dtype == bool:
        return index if k == 1 else ~index
    return index == k


@LAYERS.register()
class GlobalAvgPool2D(Layer):
    """The mean of each channel over the whole image: ``y[n, c] = mean_{h, w} x[n, c, h, w]``;
    x ``(n, C, H, W)``, y ``(n, C)``. Backward: ``dx[n, c, h, w] = g[n, c] / (H * W)``."""

    input_ndim = 3

    @classmethod
    def infer(cls, config: Config, input_shape: Shape) -> tuple[Config, Shape]:
        c, _, _ = _image_shape("GlobalAvgPool2D", input_shape)
        return config, (c,)

    def forward(self, x: np.ndarray) -> np.ndarray:
        _check_images("GlobalAvgPool2D", x)
        self._shape = x.shape
        return np.add.reduce(x, axis=(2, 3)) * (1.0 / (x.shape[2] * x.shape[3]))

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray:
        _, _, h, w = self._shape
        dx = np.empty(self._shape, dtype=grad_out.dtype)
        dx[...] = (grad_out * (1.0 / (h * w)))[:, :, None, None]
        return dx


@LAYERS.register()
class Flatten(Layer):
    """Each sample's values in one row: x ``(n, d1, d2, ...)`` -> y ``(n, d1*d2*...)``, in C order
    (``y[n, (c, h, w)] = x[n, c, h, w]``, as PyTorch's ``flatten``). Backward: ``dx = g``
    reshaped back."""

    @classmethod
    def infer(cls, config: Config, input_shape: Shape) -> tuple[Config, Shape]:
        return config, (math.prod(input_shape),)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._shape = x.shape
        return x.reshape(len(x), -1)

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray:
        return grad_out.reshape(self._shape)


@LAYERS.register()
class Unflatten(Layer):
    """The inverse of :class:`Flatten`: rows x ``(n, prod(shape))`` -> y ``(n, *shape)``, e.g.
    MNIST's 784 pixels as ``(1, 28, 28)`` images for a convolution. Backward: ``dx = g``
    reshaped to rows."""

    input_ndim = 1

    def __init__(self, shape: Sequence[int]) -> None:
        super().__init__()
        if not isinstance(shape, (list, tuple)) or not shape or not all(
                isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 1 for s in shape):
            raise ValueError(f"Unflatten needs a shape of positive whole numbers, got {shape!r}")
        self.shape = tuple(int(s) for s in shape)

    @classmethod
    def infer(cls, config: Config, input_shape: Shape) -> tuple[Config, Shape]:
        shape = cls(config.get("shape", ())).shape
        if tuple(input_shape) != (math.prod(shape),):
            raise ValueError(f"Unflatten to {shape} takes rows of {math.prod(shape)} values, "
                             f"got inputs of shape {tuple(input_shape)}")
        return config, shape

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 2 or x.shape[1] != math.prod(self.shape):
            raise ValueError(f"Unflatten to {self.shape} expects input of shape "
                             f"(n, {math.prod(self.shape)}), got {x.shape}")
        return x.reshape(len(x), *self.shape)

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray:
        return grad_out.reshape(len(grad_out), -1)

    def config(self) -> dict[str, Any]:
        return {"type": self.name, "shape": list(self.shape)}
