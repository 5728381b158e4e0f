"""Preparing arbitrary images like MNIST (digitnet.data.images), and `digitnet predict MODEL IMAGE...`."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

pytest.importorskip("PIL", reason="Pillow is not installed (the images extra)")
pytest.importorskip("scipy", reason="scipy is not installed (the images extra)")

from PIL import Image  # noqa: E402

from digitnet.cli import main  # noqa: E402
from digitnet.data import images  # noqa: E402
from digitnet.data.images import (  # noqa: E402
    ImageError,
    ImageTooLargeError,
    NoInkError,
    bright_ink,
    center_by_mass,
    crop_to_ink,
    decode,
    digit_strokes,
    estimate_background,
    fit_box,
    ink_image,
    mnist_like,
    otsu_threshold,
    stroke_width,
)
from digitnet.errors import DigitnetError  # noqa: E402
from tests.conftest import mnist_dir, requires_mnist  # noqa: E402
from tests.web.helpers import draw, encode, png, shapes_classifier  # noqa: E402


def center_of_mass(img: np.ndarray) -> tuple[float, float]:
    img = img.astype(np.float64)
    idx = np.arange(img.shape[0])
    return (float((img.sum(1) * idx).sum() / img.sum()),
            float((img.sum(0) * np.arange(img.shape[1])).sum() / img.sum()))


# --------------------------------------------------------------------------- decode
def test_decode_bytes_and_path_agree(tmp_path):
    data = png("zero")
    (tmp_path / "z.png").write_bytes(data)
    a, b = decode(data), decode(tmp_path / "z.png")
    assert a.shape == (280, 280) and a.dtype == np.float64
    np.testing.assert_array_equal(a, b)
    assert a.min() == 0 and a.max() == 255


def test_decode_rgb_and_jpeg():
    rgb = decode(encode(draw("one", mode="RGB")))
    assert rgb.shape == (280, 280) and rgb[140, 140] == 0 and rgb[5, 5] == 255
    jpeg = decode(encode(draw("one"), "JPEG", quality=90))
    assert abs(jpeg[140, 140]) < 20 and jpeg[5, 5] > 235


@pytest.mark.parametrize("ink", [0, 255])
def test_alpha_is_composited_onto_a_contrasting_background(ink):
    """A canvas export: ink on transparent pixels, either colour; the ink must survive."""
    stroke = np.asarray(draw("one", ink=255, paper=0))  # where the ink is
    rgba = np.zeros((280, 280, 4), np.uint8)
    rgba[..., :3] = ink
    rgba[..., 3] = stroke  # opaque only on the stroke; its RGB under transparency is ignored
    gray = decode(encode(Image.fromarray(rgba, "RGBA")))
    assert gray[140, 140] == ink
    assert gray[5, 5] == 255 - ink  # the transparent background contrasts with the ink
    assert mnist_like(encode(Image.fromarray(rgba, "RGBA"))).max() == 255


def test_fully_transparent_image_has_no_ink():
    with pytest.raises(NoInkError, match="no ink found"):
        decode(encode(Image.new("RGBA", (50, 50), (0, 0, 0, 0))))


def test_photos_are_turned_upright_by_their_exif_orientation():
    upright = draw("seven", size=(200, 300))  # top bar on row 45, x 60-140
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # the camera kept it on its side
    exif = Image.Exif()
    exif[0x0112] = 6  # EXIF orientation 6: turn 90 degrees clockwise to view
    gray = decode(encode(stored, "JPEG", quality=95, exif=exif.tobytes()))
    assert gray.shape == (300, 200)
    assert gray[45, 70] < 40 and gray[254, 130] > 215  # the bar on top, not upside down


def test_sixteen_bit_grayscale_is_scaled():
    arr = np.full((60, 60), 65535, np.uint16)
    arr[10:50, 28:32] = 0
    gray = decode(encode(Image.fromarray(arr)))
    assert gray[30, 30] == 0 and gray[0, 0] == pytest.approx(255)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_float_images_with_nan_or_inf_are_refused(bad):
    arr = np.zeros((30, 30), np.float32)
    arr[5:25, 14:16] = 255.0
    arr[0, 0] = bad
    with pytest.raises(ImageError, match="NaN or infinite"):
        decode(encode(Image.fromarray(arr, mode="F"), "TIFF"))


@pytest.mark.parametrize("data,message", [
    (b"", "empty"),
    (b"this is not an image", "not an image"),
    (png("zero")[:200], "cannot"),  # a truncated PNG
])
def test_unreadable_bytes(data, message):
    with pytest.raises(ImageError, match=message):
        decode(data)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        decode(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="is a directory"):
        decode(tmp_path)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        decode(tmp_path / "empty.png")


def test_pixel_limit_is_checked_before_decoding():
    bomb = encode(Image.new("1", (6000, 5000)))  # 30 megapixels in a few kilobytes
    assert len(bomb) < 20_000
    with pytest.raises(ImageTooLargeError, match="30,000,000 pixels is over the limit of 1,000,000"):
        decode(bomb, max_pixels=1_000_000)


def test_formats_restrict_the_decoders():
    with pytest.raises(ImageError, match="expected PNG"):
        decode(encode(draw("one"), "BMP"), formats=("PNG",))
    assert decode(encode(draw("one"), "BMP")).shape == (280, 280)


def test_large_images_are_reduced_before_array_work():
    gray = decode(png("one", size=(3000, 1500), width=60))
    assert max(gray.shape) == images.WORKING_SIDE and gray.shape == (512, 1024)


# --------------------------------------------------------------------------- steps
def test_ink_image_inverts_light_backgrounds_only():
    dark_on_light = np.asarray(draw("one"), np.float64)
    light_on_dark = np.asarray(draw("one", ink=255, paper=0), np.float64)
    a, b = ink_image(dark_on_light), ink_image(light_on_dark)
    np.testing.assert_array_equal(a, b)
    assert a[140, 140] == 255 and a[5, 5] == 0


def test_ink_image_subtracts_a_gray_background_and_drops_noise():
    rng = np.random.default_rng(0)
    paper = 200 + rng.integers(-8, 9, size=(100, 100))  # gray, textured paper
    paper[20:80, 48:52] = 60  # the stroke
    ink = ink_image(paper)
    assert ink[50, 50] == pytest.approx(255)
    assert np.count_nonzero(ink) == 60 * 4  # the texture is gone, the stroke kept


@pytest.mark.parametrize("image", [
    np.full((50, 50), 255.0),  # white paper
    np.zeros((50, 50)),  # black canvas
    np.random.default_rng(1).integers(230, 256, size=(50, 50)).astype(float),  # faint noise
])
def test_empty_canvas_says_no_ink_found(image):
    with pytest.raises(NoInkError, match="no ink found"):
        ink_image(image)
    with pytest.raises(NoInkError, match="no ink found"):
        mnist_like(image)


def test_empty_png_says_no_ink_found():
    with pytest.raises(NoInkError, match="no ink found"):
        mnist_like(png("blank"))


def test_crop_to_ink_is_the_bounding_box():
    ink = np.zeros((40, 50))
    ink[5:17, 30:33] = 100
    ink[10, 20] = 7
    box = crop_to_ink(ink)
    assert box.shape == (12, 13)
    assert box[5, 0] == 7 and box[0, -1] == 100


def test_fit_box_keeps_the_aspect_ratio():
    tall = fit_box(np.full((100, 50), 255.0))
    assert tall.shape == (20, 10)
    wide = fit_box(np.full((30, 120), 255.0))
    assert wide.shape == (5, 20)
    small = fit_box(np.full((4, 2), 255.0))  # enlarged too
    assert small.shape == (20, 10)


def test_fit_box_keeps_a_thin_line_visible():
    line = np.zeros((300, 3))
    line[:, 1] = 255
    box = fit_box(line)
    assert box.shape == (20, 1)
    assert box.min() > 200 and box.max() == pytest.approx(255)


def test_center_by_mass_puts_the_centre_of_mass_at_14_14():
    box = np.zeros((20, 12))
    box[:, :3] = 255  # heavy on the left: the box itself must sit right of centre
    box[0, :] = 255
    out = center_by_mass(box)
    assert out.shape == (28, 28) and out.sum() == box.sum()
    cy, cx = center_of_mass(out)
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5


def test_center_by_mass_never_pushes_ink_off_the_field():
    box = np.zeros((20, 20))
    box[:, -1] = 255  # all the mass on the far right
    out = center_by_mass(box)
    assert out.sum() == box.sum()


# --------------------------------------------------------------------------- photos: the ink's steps
def test_bright_ink_finds_pen_on_a_dim_page():
    """Under-exposed paper is darker than mid-grey but still lighter than the pen."""
    page = np.full((60, 60), 120.0)
    page[10:50, 28:32] = 40.0
    assert bright_ink(page)[30, 30] == 215 and bright_ink(page)[0, 0] == 135
    canvas = np.full((60, 60), 60.0)  # a grey canvas with light ink stays as it is
    canvas[10:50, 28:32] = 200.0
    np.testing.assert_array_equal(bright_ink(canvas), canvas)


def test_background_follows_light_and_shadow_but_not_strokes():
    rows, cols = np.mgrid[0:200, 0:300]
    slope = 60.0 / 299
    paper = 20.0 + slope * cols  # ink bright: the paper is darker to the right (light falls off)
    paper[:, 150:] += 50.0  # a sharp-edged shadow over the right half
    page = paper.copy()
    strokes = np.zeros(page.shape, bool)
    strokes[40:160, 70:82] = strokes[40:160, 200:212] = True  # 12 pixels wide, in light and shadow
    page[strokes] += 150.0
    background = estimate_background(page, window=60)
    assert np.all(background <= page)
    error = np.abs(background - paper)
    assert error.max() < slope * 60 / 2 + 1e-9  # within half a window of the sides
    inner = np.zeros(page.shape, bool)
    inner[:, 30:270] = True  # elsewhere the light and the shadow's edge come through exactly
    assert error[inner & ~strokes].max() < 1e-9
    assert error[strokes].max() <= slope * 12 + 1e-9  # under a stroke: the paper beside it
    np.testing.assert_array_equal(estimate_background(page), background)  # a fifth of the longer side


def test_otsu_threshold_splits_paper_from_ink():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(20, 5, 5000), rng.normal(180, 15, 300)])
    t = otsu_threshold(values)
    assert 50 < t < 140
    assert np.count_nonzero(values > t) == 300
    assert otsu_threshold(np.full(10, 7.0)) == 7.0


def test_digit_strokes_keep_the_parts_and_drop_specks():
    mask = np.zeros((200, 200), bool)
    mask[40:160, 95:105] = True  # the digit's main stroke
    mask[40:48, 110:150] = True  # its bar, drawn apart (a 5)
    mask[170:172, 20:22] = True  # dust
    mask[100, 60] = True  # a speck close by
    mask[5:20, 182:195] = True  # another mark, away from the digit (farther than 30 pixels)
    kept = digit_strokes(mask)
    expected = np.zeros_like(mask)
    expected[40:160, 95:105] = True
    expected[40:48, 110:150] = True
    np.testing.assert_array_equal(kept, expected)


def test_digit_strokes_drop_clutter_at_the_edge_but_not_a_digit_drawn_to_it():
    mask = np.zeros((200, 200), bool)
    mask[:, :8] = True  # a shadow's rim along the left edge, larger than the digit
    mask[50:150, 95:105] = True
    assert not digit_strokes(mask)[:, :8].any() and digit_strokes(mask)[100, 100]
    canvas = np.zeros((200, 200), bool)
    canvas[0:200, 90:110] = True  # a 1 drawn from edge to edge
    canvas[100:104, 150:154] = True  # and a stray mark inside the frame
    np.testing.assert_array_equal(digit_strokes(canvas), canvas & (np.arange(200) < 150)[None, :])


@pytest.mark.parametrize("width,side", [(12, 200), (20, 900)])
def test_stroke_width_is_measured(width, side):
    mask = np.zeros((side, side), bool)
    mask[side // 10 : -side // 10, side // 2 : side // 2 + width] = True
    mask[side // 2 : side // 2 + width, side // 10 : -side // 10] = True  # a cross
    assert stroke_width(mask) == pytest.approx(width, rel=0.1)


def test_a_thick_stroke_filling_the_frame_is_not_hollowed():
    """A tight crop of a thick, slightly blurred ring: its strokes are wider than the first
    window (a fifth of the image), which would keep their cores as background; they get a
    window fitted to them."""
    from scipy import ndimage

    rows, cols = np.mgrid[0:100, 0:100]
    r = np.hypot(rows - 49.5, cols - 49.5)
    ring = (r < 46) & (r > 22)  # strokes 24 pixels wide
    gray = ndimage.gaussian_filter(np.where(ring, 30.0, 225.0), 2.0)
    ink = ink_image(gray)
    assert np.count_nonzero(ink[ring]) >= 0.97 * ring.sum()
    assert np.count_nonzero(ink[~ring]) <= 0.01 * ring.sum()
    residual = bright_ink(gray) - estimate_background(bright_ink(gray))  # one window, a fifth wide
    assert np.count_nonzero(residual[ring] > otsu_threshold(residual)) < 0.5 * ring.sum()


@pytest.mark.parametrize("what", ["gradient", "shadow", "dust"])
def test_blank_photographed_paper_has_no_ink(what):
    rng = np.random.default_rng(3)
    rows, cols = np.mgrid[0:300, 0:400]
    page = 230.0 - 90.0 * cols / 399 + rng.normal(0, 3, (300, 400))  # lit from the left
    if what == "shadow":
        page[:, 150:280] *= 0.5
    if what == "dust":
        for y, x in rng.integers(5, 295, size=(30, 2)):
            page[y : y + 2, x : x + 2] = 40.0
    with pytest.raises(NoInkError, match="no ink found"):
        mnist_like(page)


def test_background_removal_can_be_switched_off():
    """One flat level instead: a page darker on one side is then cropped to its dark side."""
    rows, cols = np.mgrid[0:280, 0:280]
    page = np.asarray(draw("one"), np.float64) * (1.0 - 0.8 * cols / 279)  # light falling off to a fifth
    on, off = mnist_like(page), mnist_like(page, remove_background=False)
    np.testing.assert_array_equal(on, mnist_like(png("one")))
    assert np.count_nonzero(off > 127) > 2 * np.count_nonzero(on > 127)


def test_missing_scipy_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy", None)  # import scipy now raises ImportError
    with pytest.raises(DigitnetError, match=r"needs scipy.*pip install 'digitnet\[images\]'"):
        mnist_like(png("one"))


# --------------------------------------------------------------------------- whole pipeline
def test_mnist_like_returns_mnist_shaped_uint8():
    out = mnist_like(png("zero"))
    assert out.shape == (28, 28) and out.dtype == np.uint8 and out.max() == 255
    rows, cols = np.flatnonzero(out.any(1)), np.flatnonzero(out.any(0))
    assert rows[-1] - rows[0] + 1 == 20  # the longer side is 20 pixels
    assert rows[0] >= 4 and rows[-1] <= 23 and cols[0] >= 4 and cols[-1] <= 23
    cy, cx = center_of_mass(out)
    assert abs(cy - 14) <= 0.6 and abs(cx - 14) <= 0.6


def test_a_vertical_stroke_becomes_a_centred_upright_line():
    out = mnist_like(png("one"))
    cols = np.flatnonzero(out.max(0) > 127)
    assert len(cols) <= 3 and abs(cols.mean() - 14) <= 1
    assert np.count_nonzero(out.max(1)) == 20


def test_shifted_and_scaled_digits_come_out_the_same():
    a = mnist_like(png("seven"))
    # the same seven twice as large, in the top left corner of a bigger page
    b = mnist_like(png("seven", size=(900, 700), box=(50 / 900, 30 / 700, 274 / 900, 422 / 700),
                       width=40))
    c = mnist_like(png("seven", ink=255, paper=0))  # white on black
    assert np.abs(a.astype(int) - c).max() == 0
    assert np.abs(a.astype(int) - b).mean() < 8


def test_thin_lines_are_found():
    out = mnist_like(png("one", width=1, size=(500, 500)))
    assert out.max() == 255 and np.count_nonzero(out.max(1)) == 20


def test_arrays_are_accepted_and_checked():
    gray = np.asarray(draw("zero"), np.float64)
    np.testing.assert_array_equal(mnist_like(gray), mnist_like(png("zero")))
    gray[0, 0] = np.nan
    with pytest.raises(ImageError, match="finite"):
        mnist_like(gray)


@requires_mnist
def test_mnist_digits_redrawn_large_come_back_as_they_were():
    """Real test digits, inverted, enlarged 10x and placed off-centre on a big page, are
    prepared back into (nearly) the original MNIST image."""
    from digitnet.data import load_mnist

    ds = load_mnist(mnist_dir())
    diffs, corrs = [], []
    for x in ds.x_test[:40]:
        x = x.reshape(28, 28)
        big = Image.fromarray(255 - x).resize((280, 280), Image.Resampling.BILINEAR)
        page = Image.new("L", (600, 400), 255)
        page.paste(big, (250, 60))
        out = mnist_like(encode(page)).astype(np.float64)
        diffs.append(np.abs(out - x).mean())
        corrs.append(np.corrcoef(out.ravel(), x.ravel())[0, 1])
    assert np.mean(diffs) < 12 and np.mean(corrs) > 0.9


# --------------------------------------------------------------------------- the CLI
@pytest.fixture(scope="module")
def shapes_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.npz"
    shapes_classifier().save(path)
    return path


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    d = tmp_path_factory.mktemp("drawn")
    (d / "zero.png").write_bytes(png("zero", size=(400, 300), box=(0.5, 0.2, 0.8, 0.9)))
    (d / "one.jpg").write_bytes(encode(draw("one", ink=255, paper=0), "JPEG", quality=85))
    (d / "seven.png").write_bytes(png("seven", width=10))
    (d / "blank.png").write_bytes(png("blank"))
    (d / "notes.txt").write_text("not an image")
    return d


def test_predict_images_prints_digit_and_probabilities(shapes_model, drawn, capsys):
    files = [str(drawn / n) for n in ("zero.png", "one.jpg", "seven.png")]
    assert main(["predict", str(shapes_model), *files]) == 0
    out = capsys.readouterr().out
    for name, digit in zip(files, (0, 1, 7), strict=True):
        assert f"{name}: predicted {digit}" in out
    assert out.count("  0: ") == 3 and out.count("  7: ") == 3


def test_predict_images_json(shapes_model, drawn, capsys):
    files = [str(drawn / "zero.png"), str(drawn / "seven.png")]
    assert main(["predict", str(shapes_model), *files, "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["digit"] for r in results] == [0, 7] and [r["file"] for r in results] == files
    for r in results:
        assert len(r["probabilities"]) == 3 and sum(r["probabilities"]) == pytest.approx(1, abs=1e-4)
    assert main(["predict", str(shapes_model), files[0], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["digit"] == 0


def test_predict_images_reports_bad_files_and_goes_on(shapes_model, drawn, capsys):
    files = [str(drawn / n) for n in ("notes.txt", "one.jpg", "blank.png", "missing.png")]
    assert main(["predict", str(shapes_model), *files]) == 1
    captured = capsys.readouterr()
    assert f"{files[1]}: predicted 1" in captured.out
    errors = captured.err.strip().splitlines()
    assert len(errors) == 3 and "Traceback" not in captured.err
    assert files[0] in errors[0] and "not an image" in errors[0]
    assert files[2] in errors[1] and "no ink found" in errors[1]
    assert files[3] in errors[2] and "no such file" in errors[2]


def test_predict_images_json_marks_failures(shapes_model, drawn, capsys):
    files = [str(drawn / "blank.png"), str(drawn / "zero.png")]
    assert main(["predict", str(shapes_model), *files, "--json"]) == 1
    results = json.loads(capsys.readouterr().out)
    assert "no ink found" in results[0]["error"] and results[1]["digit"] == 0


@requires_mnist
def test_predict_drawn_digits_with_an_mnist_model(tmp_path, capsys):
    from tests.web.helpers import mnist_classifier

    model = tmp_path / "model.npz"
    mnist_classifier(mnist_dir()).save(model)
    (tmp_path / "one.png").write_bytes(png("one"))
    (tmp_path / "zero.png").write_bytes(png("zero", ink=255, paper=0))
    assert main(["predict", str(model), str(tmp_path / "one.png"), str(tmp_path / "zero.png"),
                 "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["digit"] for r in results] == [1, 0]
    assert all(len(r["probabilities"]) == 10 for r in results)
