"""`sirestore serve`: the page driven end to end in headless Chromium (Playwright), and the JSON API's errors."""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sirestore.cli import main
from sirestore.restore import Restorer

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if os.path.exists(p)), None)
CHROMIUM = CHROMIUM or shutil.which("chromium") or shutil.which("chromium-browser")


def _png(array: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, "PNG")
    return buf.getvalue()


def _expected(weights: Path, image: Image.Image, steps: int) -> np.ndarray:
    """What the Python API gives for the same model and steps."""
    return np.asarray(Restorer(weights=weights, steps=steps, precision="fp32")(image)).astype(np.float64)


def _close(got: Image.Image, want: np.ndarray, scale: float) -> None:
    """Equal within 1/255 of full scale (`scale` = 255 or 65535)."""
    assert np.abs(np.asarray(got).astype(np.float64) - want).max() <= scale / 255


# --- the page, in headless Chromium -------------------------------------------------------------


def test_page_restore_compare_download(tmp_path, tiny_weights):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright)")
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    rng = np.random.default_rng(0)
    src = tmp_path / "photo.png"
    src.write_bytes(_png(rng.integers(0, 256, (48, 64, 4), dtype=np.uint8), "RGBA"))
    (tmp_path / "notes.png").write_text("not an image")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "sirestore.cli", "serve", "--weights", str(tiny_weights), "--port", "0"]
    cmd += ["--precision", "fp32"]  # the page's restorations are compared with float32 ones
    server = subprocess.Popen(
        [*cmd, "--threads", "1"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            line = server.stdout.readline()  # "sirestore serve: http://127.0.0.1:PORT/  (Ctrl-C to stop)"
            assert "http://127.0.0.1:" in line, server.stderr.read()
            url = line.split()[2]
            page = browser.new_page(accept_downloads=True)
            page.set_default_timeout(30_000)
            page.goto(url)
            page.wait_for_selector("#task option", state="attached")
            assert page.locator("#task option").all_inner_texts() == ["auto (blind denoising)"]

            # a file that is not an image: one readable line on the page
            page.set_input_files("#file", str(tmp_path / "notes.png"))
            page.click("#restore")
            error = page.wait_for_selector("#error", state="visible")
            assert error.inner_text() == "notes.png: not a recognised image file"

            page.set_input_files("#file", str(src))
            page.select_option("#task", "auto")
            page.fill("#steps", "3")
            page.click("#restore")
            page.wait_for_selector("#result", state="visible")
            assert not page.is_visible("#error")
            assert "done" in page.inner_text("#status-text")
            assert page.evaluate("document.getElementById('before').naturalWidth") == 64

            # drag the comparison slider to about a quarter of the width
            box = page.locator("#compare").bounding_box()
            y = box["y"] + box["height"] / 2
            page.mouse.move(box["x"] + box["width"] / 2, y)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] / 4, y, steps=5)
            page.mouse.up()
            left = float(page.evaluate("document.getElementById('handle').style.left").rstrip("%"))
            assert 10 < left < 40
            assert f"inset(0px 0px 0px {left}%)" in page.evaluate("document.getElementById('after').style.clipPath")

            with page.expect_download() as download:
                page.click("#download")
            assert download.value.suggested_filename == "photo_restored.png"
            download.value.save_as(tmp_path / "downloaded.png")
            assert not page.is_visible("#heat-figure")

            # again with the uncertainty map: shown under the comparison, downloadable
            page.check("#uncertainty")
            page.fill("#steps", "1")
            page.click("#restore")
            page.wait_for_selector("#heat-figure", state="visible")
            page.wait_for_function("document.getElementById('heat').naturalWidth === 64")
            with page.expect_download() as heat:
                page.click("#heat-download")
            assert heat.value.suggested_filename == "photo_uncertainty.png"
            browser.close()
    finally:
        server.terminate()
        server.wait(10)
    with Image.open(tmp_path / "downloaded.png") as got, Image.open(src) as inp:
        assert (got.size, got.mode) == (inp.size, inp.mode)
        _close(got, _expected(tiny_weights, inp, steps=3), 255)
        assert np.array_equal(np.asarray(got)[..., 3], np.asarray(inp)[..., 3])  # alpha kept as is


# --- the API ------------------------------------------------------------------------------------


class Api:
    """The app served by uvicorn in a thread, spoken to over HTTP with the standard library."""

    def __init__(self, app, port: int) -> None:
        self.app, self.port = app, port

    def request(self, method: str, path: str, body=None, headers=None) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        try:
            chunked = body is not None and not isinstance(body, bytes)
            conn.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
            response = conn.getresponse()
            return response.status, dict(response.headers), response.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, body=None, headers=None) -> tuple[int, dict]:
        status, headers, data = self.request(method, path, body, headers)
        assert headers["content-type"] == "application/json" and b"Traceback" not in data
        return status, json.loads(data)


@pytest.fixture
def api(tiny_weights):
    yield from _serving(Restorer(weights=tiny_weights, precision="fp32"))


def _serving(restorer: Restorer):
    """The app of `restorer` served in a thread (yields an Api; a fixture's body)."""
    import uvicorn

    from sirestore.serve import create_app

    app = create_app(restorer, max_pixels=10_000, max_upload=20_000, keep=2)
    sock = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    yield Api(app, sock.getsockname()[1])
    server.should_exit = True
    thread.join(10)


def _submit(
    api: Api, data, name="a.png", steps="1", task="auto", content_type=None, uncertainty="0"
) -> tuple[int, dict]:
    query = urllib.parse.urlencode({"name": name, "steps": steps, "task": task, "uncertainty": uncertainty})
    headers = {} if content_type is None else {"Content-Type": content_type}
    return api.json("POST", f"/api/jobs?{query}", data, headers)


def _wait(api: Api, job_id: str) -> dict:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status = api.json("GET", f"/api/jobs/{job_id}")[1]
        if status["state"] in ("done", "error"):
            return status
        time.sleep(0.02)
    raise AssertionError("the job did not finish")


def test_api_refuses_bad_uploads_with_one_line(api):
    good = _png(np.zeros((20, 30, 3), np.uint8))
    cut = _png(np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8))
    cases = [
        (_submit(api, b"hello, not an image", "notes.txt"), 400, "notes.txt: not a recognised image file"),
        (_submit(api, b"", "empty.png"), 400, "empty.png: the file is empty"),
        (_submit(api, cut[: len(cut) // 2], "cut.png"), 400, "cut.png: corrupt or truncated image data"),
        (
            _submit(api, _png(np.zeros((101, 100), np.uint8)), "big.png"),
            400,
            "big.png: image is larger than the limit of 10000 pixels",
        ),
        (_submit(api, os.urandom(20_001), "huge.png"), 413, "huge.png: larger than the upload limit of 0.02 MB"),
        (_submit(api, iter([b"x" * 15_000] * 2), "chunked.png"), 413, "larger than the upload limit"),  # no length
        (_submit(api, good, steps="0"), 400, "steps must be a whole number from 1 to 8"),
        (_submit(api, good, steps="x"), 400, "steps must be a whole number from 1 to 8"),
        (_submit(api, good, task="deblur"), 400, "unknown task 'deblur'"),
        (api.json("GET", "/api/jobs/0123456789abcdef"), 404, "no such job"),
        (api.json("GET", "/api/nothing"), 404, "Not Found"),
    ]
    for (status, body), want_status, message in cases:
        assert status == want_status and message in body["error"], body
        assert "\n" not in body["error"]


def test_api_job_progress_result_and_bounded_memory(api, tiny_weights):
    info = api.json("GET", "/api/info")[1]
    assert info["tasks"] == [{"id": "auto", "label": "auto (blind denoising)"}]
    assert info["steps"] == {"min": 1, "max": 8, "default": 1}
    pixels = np.random.default_rng(1).integers(0, 65536, (24, 40), dtype=np.uint16)
    code, job = _submit(api, _png(pixels), "deep.png", steps="2")
    assert code == 202 and job["state"] in ("queued", "running", "done")
    status = _wait(api, job["id"])
    assert (status["state"], status["done"], status["total"]) == ("done", 2, 2)
    code, headers, data = api.request("GET", f"/api/jobs/{job['id']}/result.png")
    assert code == 200 and headers["content-disposition"] == 'attachment; filename="deep_restored.png"'
    with Image.open(io.BytesIO(data)) as got:  # 16-bit gray stays 16-bit gray
        assert (got.mode, got.size) == ("I;16", (40, 24))
        _close(got, np.asarray(Restorer(weights=tiny_weights, steps=2, precision="fp32")(pixels), np.float64), 65535)
    assert api.request("GET", f"/api/jobs/{job['id']}/input.png")[1]["content-type"] == "image/png"
    for _ in range(3):  # keep=2: older finished jobs are dropped
        _wait(api, _submit(api, _png(np.zeros((8, 8, 3), np.uint8)))[1]["id"])
    assert len(api.app.state.service.jobs) == 2
    assert api.json("GET", f"/api/jobs/{job['id']}")[0] == 404


def test_serve_without_extra_is_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if not installed
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        'error: `sirestore serve` needs the serve extra: pip install "sirestore[serve]"'
    ]


def test_serve_port_in_use_is_one_line(tiny_weights, capsys):
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        assert main(["serve", "--weights", str(tiny_weights), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"error: cannot listen on 127.0.0.1:{port}" in err


# --- limits: content type, names, nosniff, bind address -----------------------------------------


def test_api_content_type_filters_but_decoding_decides(api):
    png = _png(np.zeros((8, 8, 3), np.uint8))
    accepted = ["application/octet-stream", "image/png", "image/jpeg", "IMAGE/PNG; charset=binary", None]
    for content_type in accepted:  # a PNG labelled image/jpeg is still a PNG: the bytes decide
        code, job = _submit(api, png, "a.png", content_type=content_type)
        assert code == 202, (content_type, job)
        assert _wait(api, job["id"])["state"] == "done"
    code, body = _submit(api, b"<svg xmlns='http://www.w3.org/2000/svg'/>", "x.svg", content_type="image/svg+xml")
    assert code == 400 and body["error"] == "x.svg: not a recognised image file"  # the header is not enough
    refused = ["text/plain", "application/json", "multipart/form-data; boundary=x", "image/", "text/html"]
    for content_type in refused:
        code, body = _submit(api, png, "a.png", content_type=content_type)
        want = f"a.png: content type {content_type.split(';')[0]!r} refused; send the file's bytes as image/*"
        assert code == 415 and body["error"].startswith(want), body


def test_every_response_says_nosniff(api):
    job = _submit(api, _png(np.zeros((8, 8, 3), np.uint8)))[1]
    _wait(api, job["id"])
    paths = ["/", "/api/info", f"/api/jobs/{job['id']}", f"/api/jobs/{job['id']}/input.png"]
    paths += [f"/api/jobs/{job['id']}/result.png", "/api/jobs/0123456789abcdef", "/api/nothing"]
    for path in paths:
        assert api.request("GET", path)[1]["x-content-type-options"] == "nosniff", path
    query = urllib.parse.urlencode({"name": "a.png"})
    for status, headers, _ in [
        api.request("POST", f"/api/jobs?{query}", b"x", {"Content-Type": "text/plain"}),
        api.request("POST", f"/api/jobs?{query}", b"not an image"),
        api.request("DELETE", "/api/info"),
    ]:
        assert status >= 400 and headers["x-content-type-options"] == "nosniff"


HOSTILE_NAMES = {  # client's name -> the download's ASCII name
    "../../etc/passwd": "passwd_restored.png",
    "/etc/passwd.png": "passwd_restored.png",
    "a/b\\c.png": "c_restored.png",
    "..\\..\\boot.ini": "boot_restored.png",
    'x"; filename="evil.sh': "x_filename_evil_restored.png",
    "a\x00b\nc\r\n.png": "a_b_c_restored.png",
    "new\nline.png": "new_line_restored.png",
    "x" * 1000 + ".png": "x" * 80 + "_restored.png",
    "фото.png": "image_restored.png",
    "café 1.png": "caf_1_restored.png",
    "\u202egnp.exe": "gnp_restored.png",
    "": "image_restored.png",
    "..": "image_restored.png",
    ".png": "png_restored.png",
    "/": "image_restored.png",
}


def test_download_name_is_never_a_path():
    from sirestore.serve_limits import client_name, content_disposition

    for raw, want in HOSTILE_NAMES.items():
        for name in (raw, client_name(raw)):  # as given, and as the server keeps it
            value = content_disposition(name)
            m = re.fullmatch(
                r'attachment; filename="([A-Za-z0-9._-]+)"(?:; filename\*=UTF-8\'\'([A-Za-z0-9%._-]+))?', value
            )
            assert m is not None, (raw, value)
            assert name != raw or m.group(1) == want, (raw, value)
            unicode_name = urllib.parse.unquote(m.group(2) or m.group(1))
            assert unicode_name.endswith("_restored.png") and len(unicode_name) <= 80 + len("_restored.png")
            assert not any(c in unicode_name for c in "/\\\"';") and unicode_name.isprintable(), value
    assert content_disposition("фото.png") == (
        "attachment; filename=\"image_restored.png\"; filename*=UTF-8''%D1%84%D0%BE%D1%82%D0%BE_restored.png"
    )


def test_api_download_name_of_hostile_names(api):
    for name, want in [("../../etc/passwd", "passwd_restored.png"), ("a/b\\c\x00\n.png", "c_restored.png")]:
        code, job = _submit(api, _png(np.zeros((8, 8), np.uint8)), name)
        assert code == 202 and _wait(api, job["id"])["state"] == "done"
        headers = api.request("GET", f"/api/jobs/{job['id']}/result.png")[1]
        assert headers["content-disposition"] == f'attachment; filename="{want}"'
    code, body = _submit(api, b"junk", "../../etc/passwd\x00\nx")
    assert code == 400 and body["error"] == "../../etc/passwd? x: not a recognised image file"


def test_bind_warns_when_not_loopback():
    from sirestore.serve_limits import bind

    for host in ("127.0.0.1", "localhost"):
        sock, warning = bind(host, 0)
        sock.close()
        assert warning is None, host
    sock, warning = bind("0.0.0.0", 0)
    sock.close()
    assert warning is not None and warning.startswith("warning: listening on 0.0.0.0, not only this machine")
    assert "\n" not in warning
    if socket.has_ipv6:
        try:
            sock, warning = bind("::1", 0)
        except OSError:
            pass  # no IPv6 loopback here
        else:
            sock.close()
            assert warning is None


@pytest.mark.parametrize("host", [None, "0.0.0.0"])
def test_serve_warns_in_one_line_when_not_loopback(tiny_weights, capsys, monkeypatch, host):
    import uvicorn

    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: None)  # do not serve forever
    args = ["serve", "--weights", str(tiny_weights), "--port", "0"] + (["--host", host] if host else [])
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"sirestore serve: http://{host or '127.0.0.1'}:")
    if host is None:
        assert err == ""
    else:
        assert len(err.strip().splitlines()) == 1 and err.startswith("warning: listening on 0.0.0.0")


def test_api_uncertainty_map(api, tiny_weights):
    assert api.json("GET", "/api/info")[1]["uncertainty_samples"] == 8
    image = np.random.default_rng(2).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    status = _wait(api, _submit(api, _png(image), uncertainty="1")[1]["id"])
    assert (status["state"], status["uncertainty"], status["done"], status["total"]) == ("done", True, 9, 9)
    code, headers, data = api.request("GET", f"/api/jobs/{status['id']}/uncertainty.png")
    assert code == 200 and headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(data)) as heat:
        assert (heat.mode, heat.size) == ("RGB", (30, 20)) and np.asarray(heat).max() > 0
    with Image.open(io.BytesIO(api.request("GET", f"/api/jobs/{status['id']}/result.png")[2])) as got:
        _close(got, _expected(tiny_weights, Image.fromarray(image), steps=1), 255)  # the same restoration
    plain = _wait(api, _submit(api, _png(image))[1]["id"])
    assert plain["uncertainty"] is False
    code, body = api.json("GET", f"/api/jobs/{plain['id']}/uncertainty.png")
    assert code == 409 and "no uncertainty map" in body["error"]
    code, body = _submit(api, _png(image), uncertainty="yes")
    assert code == 400 and "uncertainty" in body["error"]


@pytest.fixture
def allinone_api():
    from .test_allinone import _detecting

    yield from _serving(Restorer(model=_detecting()))


def test_api_offers_and_forces_the_tasks_of_an_all_in_one_model(allinone_api):
    from sirestore.tasks import TASKS

    tasks = allinone_api.json("GET", "/api/info")[1]["tasks"]
    assert [t["id"] for t in tasks] == ["auto", *TASKS] and tasks[-3]["label"] == "low light"
    image = _png(np.random.default_rng(3).integers(0, 256, (16, 16, 3), dtype=np.uint8))
    restorer = allinone_api.app.state.service.restorer
    told, condition = [], restorer.condition
    restorer.condition = lambda y: (told.append(restorer.task), condition(y))[1]  # what each job conditions on
    for task in ("auto", "rain", "noise"):
        status = _wait(allinone_api, _submit(allinone_api, image, task=task)[1]["id"])
        assert status["state"] == "done", status
    assert told == [None, "rain", "noise"]
    code, body = _submit(allinone_api, image, task="sharpen")
    assert code == 400 and "unknown task" in body["error"]
