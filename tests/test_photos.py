"""Photos and drawings read as MNIST was written: real MNIST test digits rendered as pen on
paper and photographed badly (``benchmarks/photos.py`` draws the cases), prepared by
``mnist_like`` and read by a model trained for a few seconds on MNIST."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PIL", reason="Pillow is not installed (the images extra)")
pytest.importorskip("scipy", reason="scipy is not installed (the images extra)")

from benchmarks.photos import CASES, PLAIN, readable_digits, render  # noqa: E402

from digitnet.data.images import NoInkError, mnist_like  # noqa: E402
from tests.conftest import mnist_dir, requires_mnist  # noqa: E402

pytestmark = requires_mnist

REPORTED = (3, 7)  # read as 7 and 4 when photographed under uneven light, before backgrounds were removed
LIGHTING = ("gradient", "shadow", "gradient+texture+shadow", "small+gradient", "phone-photo")


@pytest.fixture(scope="module")
def model():
    """The tests' MNIST model (784-128-10, two epochs; trained once per session)."""
    from tests.web.helpers import mnist_classifier

    return mnist_classifier(mnist_dir())


@pytest.fixture(scope="module")
def digits(model):
    """The first test digit of each class that the model reads correctly as it is: {label: (784,)}."""
    from digitnet.data import load_mnist

    ds = load_mnist(mnist_dir(), progress=False)
    x, y = readable_digits(model, ds.x_test, ds.y_test, per_class=1)
    return dict(zip(y.tolist(), x, strict=True))


def case_digits(case: str) -> tuple[int, ...]:
    """The digits a case is tried on: the two reported ones and one more, a different one
    for each case in turn, so that every class is seen."""
    others = [d for d in range(10) if d not in REPORTED]
    return (*REPORTED, others[list(CASES).index(case) % len(others)])


def read(model, image, **kwargs) -> int:
    return int(model.predict(mnist_like(image, **kwargs).reshape(1, -1))[0])


@pytest.mark.parametrize("case", list(CASES))
def test_every_photo_like_case_is_read_correctly(model, digits, case):
    got = {d: read(model, render(case, digits[d], seed=d)) for d in case_digits(case)}
    assert got == {d: d for d in got}, f"{case}: read {got}"


def test_background_removal_is_what_reads_them(model, digits):
    """With one flat paper level instead of the estimated background, shaded photos are
    misread (cropped to the shadow or the dark side of the page)."""
    wrong = []
    for case in LIGHTING:
        for d in case_digits(case):
            try:
                if read(model, render(case, digits[d], seed=d), remove_background=False) != d:
                    wrong.append((case, d))
            except NoInkError:
                wrong.append((case, d))
    assert len(wrong) >= len(LIGHTING), wrong  # at least as many misses as shaded cases


@pytest.mark.parametrize("case", PLAIN)
def test_plain_drawings_come_out_as_before(digits, case):
    """Evenly lit paper and a dark canvas: the estimated background is the flat paper, so
    removing it changes nothing."""
    for d in REPORTED:
        image = render(case, digits[d], seed=d)
        np.testing.assert_array_equal(mnist_like(image), mnist_like(image, remove_background=False))


def test_cases_render_the_same_for_the_same_seed(digits):
    a = render("phone-photo", digits[3], seed=5)
    assert isinstance(a, bytes) and a == render("phone-photo", digits[3], seed=5)
    assert a != render("phone-photo", digits[3], seed=6)
    page = render("shadow", digits[7], seed=1)
    assert page.dtype == np.uint8 and page.ndim == 2
