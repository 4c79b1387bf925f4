"""`sirestore serve`: the page driven end to end in headless Chromium (Playwright), and the JSON API's errors."""

from __future__ import annotations

import http.client
import io
import json
import os
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
    return np.asarray(Restorer(weights=weights, steps=steps)(image)).astype(np.float64)


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

    def request(self, method: str, path: str, body=None) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        try:
            conn.request(method, path, body=body, encode_chunked=body is not None and not isinstance(body, bytes))
            response = conn.getresponse()
            return response.status, dict(response.headers), response.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, body=None) -> tuple[int, dict]:
        status, headers, data = self.request(method, path, body)
        assert headers["content-type"] == "application/json" and b"Traceback" not in data
        return status, json.loads(data)


@pytest.fixture
def api(tiny_weights):
    import uvicorn

    from sirestore.serve import create_app

    app = create_app(Restorer(weights=tiny_weights), max_pixels=10_000, max_upload=20_000, keep=2)
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


def _submit(api: Api, data, name: str = "a.png", steps: str = "1", task: str = "auto") -> tuple[int, dict]:
    query = urllib.parse.urlencode({"name": name, "steps": steps, "task": task})
    return api.json("POST", f"/api/jobs?{query}", data)


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
        _close(got, np.asarray(Restorer(weights=tiny_weights, steps=2)(pixels), np.float64), 65535)
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
