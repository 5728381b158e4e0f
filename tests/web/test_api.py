"""The web API through FastAPI's TestClient: good input, every kind of bad input, the page."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="FastAPI is not installed (the web extra)")
pytest.importorskip("PIL", reason="Pillow is not installed (the web extra)")

with warnings.catch_warnings():  # Starlette >= 1.x nudges towards httpx2; httpx still works
    warnings.filterwarnings("ignore", message=".*httpx2")
    from fastapi.testclient import TestClient
from PIL import Image  # noqa: E402

from digitnet.cli import main  # noqa: E402
from digitnet.data.images import mnist_like  # noqa: E402
from digitnet.web import create_app  # noqa: E402
from tests.web.helpers import draw, encode, png, shapes_classifier  # noqa: E402

LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def clf():
    return shapes_classifier()


@pytest.fixture(scope="module")
def client(clf):
    with TestClient(create_app(clf, max_body_bytes=LIMIT, max_pixels=1_000_000)) as c:
        yield c


def post(client, body, content_type):
    return client.post("/api/predict", content=body, headers={"content-type": content_type})


def still_serving(client):
    r = post(client, png("one"), "image/png")
    assert r.status_code == 200 and r.json()["digit"] == 1


# --------------------------------------------------------------------------- good input
def test_below_min_confidence_the_api_names_no_digit(clf):
    with TestClient(create_app(clf, min_confidence=0.999999)) as strict:
        p = post(strict, png("seven"), "image/png").json()
        assert p["digit"] is None and p["sure"] is False and p["best_guess"] == 7
        assert strict.get("/api/model").json()["min_confidence"] == 0.999999
    with TestClient(create_app(clf)) as lenient:
        p = post(lenient, png("seven"), "image/png").json()
        assert p["digit"] == 7 and p["sure"] is True



@pytest.mark.parametrize("shape,digit", [("zero", 0), ("one", 1), ("seven", 7)])
def test_predict_png(client, shape, digit):
    r = post(client, png(shape), "image/png")
    assert r.status_code == 200
    p = r.json()
    assert p["digit"] == digit and p["classes"] == [0, 1, 7]
    assert len(p["probabilities"]) == 3 and sum(p["probabilities"]) == pytest.approx(1, abs=1e-4)
    assert max(p["probabilities"]) == p["probabilities"][p["classes"].index(digit)]
    image = np.asarray(p["image"])
    assert image.shape == (28, 28)
    np.testing.assert_array_equal(image, mnist_like(png(shape)))  # what the network saw
    assert [len(h) for h in p["hidden"]] == [32] and min(p["hidden"][0]) >= 0  # ReLU outputs


def test_predict_jpeg_and_multipart(client):
    jpeg = encode(draw("zero", ink=255, paper=0), "JPEG", quality=80)
    assert post(client, jpeg, "image/jpeg").json()["digit"] == 0
    r = client.post("/api/predict", files={"file": ("seven.png", png("seven"), "image/png")})
    assert r.status_code == 200 and r.json()["digit"] == 7


def test_predict_json_array_is_used_as_it_is(client, clf):
    pixels = mnist_like(png("seven")).reshape(-1)
    r = post(client, json.dumps(pixels.tolist()), "application/json")
    assert r.status_code == 200
    p = r.json()
    assert p["digit"] == 7 and np.asarray(p["image"]).reshape(-1).tolist() == pixels.tolist()
    np.testing.assert_allclose(p["probabilities"], clf.predict_proba(pixels)[0], atol=1e-6)
    floats = post(client, json.dumps((pixels / 1.0).tolist()), "application/json; charset=utf-8")
    assert floats.json()["probabilities"] == p["probabilities"]


def test_model_description(client):
    m = client.get("/api/model").json()
    assert m["sizes"] == [784, 32, 3] and m["hidden_sizes"] == [32]
    assert m["classes"] == [0, 1, 7] and m["activations"] == ["ReLU"]
    assert m["parameters"] == 784 * 32 + 32 + 32 * 3 + 3
    assert m["normalization"]["method"] == "unit"
    assert m["limits"] == {"max_body_bytes": LIMIT, "max_pixels": 1_000_000}


def test_openapi_describes_the_api(client):
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/api/predict"]["post"]["requestBody"]["content"]
    assert {"image/png", "image/jpeg", "multipart/form-data", "application/json"} <= set(body)
    assert body["application/json"]["schema"]["minItems"] == 784
    responses = spec["paths"]["/api/predict"]["post"]["responses"]
    assert {"200", "400", "413", "415", "422"} <= set(responses)
    assert "get" in spec["paths"]["/api/model"]


def test_the_page_and_its_files_are_local(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    html = page.text
    assert '<canvas id="pad"' in html and 'id="digit"' in html and 'id="clear"' in html
    assert 'name="viewport"' in html
    js = client.get("/static/app.js")
    css = client.get("/static/style.css")
    assert js.status_code == css.status_code == 200
    assert "pointerdown" in js.text and "/api/predict" in js.text
    assert "@media" in css.text
    for text in (html, js.text, css.text):  # no CDN: the machine may have no internet
        assert "http://" not in text and "https://" not in text


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("body,ctype,status,message", [
    (b"GIF89a but not really", "image/png", 400, "not an image"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 50, "image/png", 400, "image"),
    (b"", "image/png", 400, "empty"),
    (b"", "application/json", 400, "empty"),
    (b"[1, 2, 3]", "application/json", 422, "784"),
    (json.dumps([0] * 785).encode(), "application/json", 422, "got 785"),
    (("[" + ", ".join(["0"] * 783) + ", NaN]").encode(), "application/json", 422, "NaN"),
    (("[" + ", ".join(["0"] * 783) + ", Infinity]").encode(), "application/json", 422, "NaN or Infinity"),
    (json.dumps([0] * 783 + [None]).encode(), "application/json", 422, "number"),
    (json.dumps([0] * 783 + ["7"]).encode(), "application/json", 422, "number"),
    (json.dumps([0] * 783 + [256]).encode(), "application/json", 422, "0-255"),
    (json.dumps([0] * 783 + [-1]).encode(), "application/json", 422, "0-255"),
    (("[" + ", ".join(["0"] * 783) + ", 1" + "0" * 400 + "]").encode(), "application/json", 422, "0-255"),
    (("[" + ", ".join(["0"] * 783) + ", 1" + "0" * 5000 + "]").encode(), "application/json", 400, "JSON"),
    (b"[" * 20_000 + b"]" * 20_000, "application/json", 400, "nested too deeply"),
    (json.dumps({"pixels": [0] * 784}).encode(), "application/json", 422, "JSON array"),
    (b"[0, 0,", "application/json", 400, "not valid JSON"),
    (b"hello", "text/plain", 415, "unsupported content type"),
    (png("one"), "image/gif", 415, "unsupported content type"),
    (png("one"), "", 415, "unsupported content type"),
    (b"--x\r\n", "multipart/form-data", 400, "multipart"),
])
def test_bad_input_gets_4xx_json_and_the_server_goes_on(client, body, ctype, status, message):
    r = post(client, body, ctype)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    assert message in r.json()["detail"]
    still_serving(client)


def test_blank_canvas_is_no_ink_found(client):
    r = post(client, png("blank"), "image/png")
    assert r.status_code == 422 and "no ink found" in r.json()["detail"]
    still_serving(client)


def test_body_over_the_limit_by_content_length(client):
    r = post(client, b"\0" * (LIMIT + 1), "image/png")
    assert r.status_code == 413 and f"{LIMIT:,}" in r.json()["detail"]
    still_serving(client)


def test_body_over_the_limit_without_content_length(client):
    """A chunked body has no Content-Length: the limit is enforced while reading."""
    def chunks():
        for _ in range(10):
            yield b"\0" * (LIMIT // 4)

    r = client.post("/api/predict", content=chunks(), headers={"content-type": "image/png"})
    assert r.status_code == 413 and "over the limit" in r.json()["detail"]
    still_serving(client)


def test_lying_content_length_is_not_trusted(client):
    """A declared length under the limit does not let a larger body through unread."""
    r = client.post("/api/predict", content=b"\0" * (2 * LIMIT),
                    headers={"content-type": "image/png", "content-length": "100"})
    assert r.status_code == 413
    still_serving(client)


def test_decompression_bomb_is_refused(client):
    bomb = encode(Image.new("1", (4000, 4000)))  # 16 megapixels in a few kilobytes
    assert len(bomb) < LIMIT
    r = post(client, bomb, "image/png")
    assert r.status_code == 413
    assert "16,000,000 pixels is over the limit of 1,000,000" in r.json()["detail"]
    still_serving(client)


def test_multipart_without_a_file_field(client):
    r = client.post("/api/predict", data={"note": "no file"}, files={"other": ("a.png", b"x", "image/png")})
    assert r.status_code == 422 and "'file'" in r.json()["detail"]
    r = client.post("/api/predict", files={"file": ("a.png", b"", "image/png")})
    assert r.status_code == 400 and "empty" in r.json()["detail"]
    still_serving(client)


def test_default_limits_are_two_megabytes_and_four_megapixels(clf):
    with TestClient(create_app(clf)) as c:
        limits = c.get("/api/model").json()["limits"]
        assert limits == {"max_body_bytes": 2 * 1024 * 1024, "max_pixels": 4_000_000}
        r = post(c, b"\0" * (2 * 1024 * 1024 + 1), "image/jpeg")
        assert r.status_code == 413


def test_app_refuses_a_model_that_is_not_28x28(tmp_path):
    from digitnet.estimator import MLPClassifier
    from tests.conftest import make_blobs

    x, y = make_blobs(n=60, d=100)
    small = MLPClassifier(hidden=(4,), epochs=1).fit(x, y).classifier_
    with pytest.raises(ValueError, match="100 inputs"):
        create_app(small)


def test_responses_are_finite_numbers(client):
    p = post(client, png("zero"), "image/png").json()
    assert all(math.isfinite(v) for v in p["probabilities"] + p["hidden"][0])


# --------------------------------------------------------------------------- the command
def test_serve_help_and_bad_arguments(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--host" in out and "127.0.0.1" in out and "--port" in out
    with pytest.raises(SystemExit):
        main(["serve", "model.npz", "--port", "70000"])
    assert "0-65535" in capsys.readouterr().err
    assert main(["serve", str(tmp_path / "missing.npz"), "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert "missing.npz" in err and len(err.strip().splitlines()) == 1


def test_serve_reports_a_port_in_use(tmp_path, capsys):
    import socket

    model = tmp_path / "model.npz"
    shapes_classifier().save(model)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        assert main(["serve", str(model), "--port", str(port)]) == 1
    err = capsys.readouterr().err.strip()
    assert f"cannot listen on 127.0.0.1:{port}" in err and len(err.splitlines()) == 1
