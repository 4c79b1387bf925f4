"""A bounded load test of `sirestore serve` on 127.0.0.1: requests served, failures, latency, server memory.

    python scripts/bench_serve_load.py [--requests 50] [--concurrency 8] [--size 256] [--weights W]
        [--warmup 50] [--steps 1] [--threads 1]

Starts `python -m sirestore.cli serve --host 127.0.0.1 --port 0` as a subprocess (upload limit
1 MB, pixel limit 100,000), sends a warm-up round, reads the server's resident memory
(/proc/PID/status VmRSS), then sends `--requests` uploads from `--concurrency` client threads and
reads it again once every job has finished. One upload in four is invalid and must be refused with
a one-line JSON error: too large (413), not an image (400), a PNG sent as text/plain (415), too many
pixels (400). The others are `--size` x `--size` RGB PNGs of noise under hostile names
(`../../etc/passwd.png`, `a/b\\c.png`, quotes, NUL, non-ASCII, 300 characters): each is polled to
completion, downloaded, decoded and checked (PNG of the same size and mode, `nosniff`, a safe
Content-Disposition). A 503 "busy" answer (more than 4 images waiting) is retried and counted, it
is the server's back-pressure, not a failure. Latency is from the first upload attempt to the
downloaded result (valid) or to the error (invalid). Prints the figures; exit status 1 on any failure.
tests/test_serve_load.py runs the same load with a tiny model.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
MAX_UPLOAD_MB = 1.0
MAX_PIXELS = 100_000
NAMES = [
    "photo.png",
    "../../etc/passwd.png",
    "a/b\\c.png",
    'quote"; filename=evil.sh.png',
    "nul\x00byte\nnewline.png",
    "фото 写真.png",
    "x" * 300 + ".png",
]
INVALID = ["oversize", "not_image", "wrong_type", "too_many_pixels"]


@dataclass
class Upload:
    kind: str  # "valid" or one of INVALID
    body: bytes
    content_type: str
    name: str
    size: tuple[int, int] = (0, 0)


@dataclass
class Outcome:
    kind: str
    ok: bool
    latency: float
    http_requests: int = 0
    busy: int = 0
    problem: str = ""
    job_id: str | None = None


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    stderr: Path
    log: list[str] = field(default_factory=list)

    def rss_mb(self) -> tuple[float, float]:
        """(VmRSS, VmHWM) of the server process in MB: resident now, and its peak."""
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines())
        return tuple(int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM"))  # type: ignore[return-value]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def start_server(weights: Path | None, threads: int = 1, timeout: float = 120) -> Server:
    """`sirestore serve` on 127.0.0.1, any free port, in a subprocess; waits for its URL line."""
    cmd = [sys.executable, "-m", "sirestore.cli", "serve", "--host", "127.0.0.1", "--port", "0"]
    cmd += ["--threads", str(threads), "--max-upload-mb", str(MAX_UPLOAD_MB), "--max-pixels", str(MAX_PIXELS)]
    if weights is not None:
        cmd += ["--weights", str(weights)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads)}
    stderr = Path(tempfile.mkstemp(prefix="sirestore-serve-load-", suffix=".log")[1])
    with stderr.open("w") as err:
        process = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    match = re.search(r"http://127\.0\.0\.1:(\d+)/", lines[0] if lines else "")
    if match is None:
        process.kill()
        raise RuntimeError(f"the server did not start: {lines!r} {stderr.read_text()[-2000:]}")
    return Server(process, int(match.group(1)), stderr)


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def make_uploads(count: int, size: int, seed: int = 0) -> list[Upload]:
    """`count` uploads: every fourth one invalid (cycling through INVALID), the others valid PNGs."""
    rng = np.random.default_rng(seed)
    uploads = []
    for i in range(count):
        name = NAMES[i % len(NAMES)]
        if i % 4 != 3:
            h, w = size, size - (i % 3)  # odd widths too
            body = _png(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
            uploads.append(Upload("valid", body, "application/octet-stream", name, (w, h)))
            continue
        kind = INVALID[(i // 4) % len(INVALID)]
        if kind == "oversize":
            uploads.append(Upload(kind, os.urandom(int(MAX_UPLOAD_MB * 1e6) + 1), "application/octet-stream", name))
        elif kind == "not_image":
            uploads.append(Upload(kind, b"<html>not an image</html>" * 10, "image/png", name))
        elif kind == "wrong_type":
            uploads.append(Upload(kind, _png(np.zeros((8, 8, 3), np.uint8)), "text/plain", name))
        else:  # a valid PNG of more pixels than the limit, a few hundred bytes
            uploads.append(Upload(kind, _png(np.zeros((400, 400), np.uint8)), "image/png", name))
    return uploads


EXPECTED = {
    "oversize": (413, "larger than the upload limit"),
    "not_image": (400, "not a recognised image file"),
    "wrong_type": (415, "content type 'text/plain' refused"),
    "too_many_pixels": (400, "larger than the limit of"),
}


def _request(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None, timeout=60):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def _json_error(status: int, headers: dict, data: bytes) -> str | None:
    """The problem with an error response, or None when it is a clean one-line JSON error."""
    if headers.get("content-type") != "application/json" or headers.get("x-content-type-options") != "nosniff":
        return f"{status}: headers {headers}"
    error = json.loads(data).get("error")
    if not isinstance(error, str) or "\n" in error or "Traceback" in error:
        return f"{status}: body {data[:200]!r}"
    return None


def send(port: int, upload: Upload, deadline_s: float = 120) -> Outcome:
    """One upload, as the page does it; a valid one is polled to completion and its result checked."""
    t0 = time.monotonic()
    out = Outcome(upload.kind, False, 0.0)
    query = urllib.parse.urlencode({"name": upload.name, "steps": "1", "task": "auto"})
    headers = {"Content-Type": upload.content_type}
    try:
        while True:
            out.http_requests += 1
            status, head, data = _request(port, "POST", f"/api/jobs?{query}", upload.body, headers)
            if status != 503:
                break
            out.busy += 1
            if time.monotonic() - t0 > deadline_s:
                out.problem = "busy until the deadline"
                return out
            time.sleep(0.1)
        if upload.kind != "valid":
            want_status, want_text = EXPECTED[upload.kind]
            problem = _json_error(status, head, data)
            error = json.loads(data).get("error", "") if problem is None else ""
            if problem is None and (status != want_status or want_text not in error):
                problem = f"{status} {error!r}, expected {want_status} {want_text!r}"
            out.ok, out.problem = problem is None, problem or ""
            return out
        if status != 202:
            out.problem = f"upload: {status} {data[:200]!r}"
            return out
        job = json.loads(data)
        out.job_id = job["id"]
        while job["state"] in ("queued", "running"):
            if time.monotonic() - t0 > deadline_s:
                out.problem = f"job still {job['state']} after {deadline_s} s"
                return out
            time.sleep(0.05)
            out.http_requests += 1
            status, head, data = _request(port, "GET", f"/api/jobs/{job['id']}")
            job = json.loads(data)
        if job["state"] != "done":
            out.problem = f"job {job['state']}: {job.get('error')}"
            return out
        out.http_requests += 1
        status, head, data = _request(port, "GET", f"/api/jobs/{job['id']}/result.png")
        disposition = head.get("content-disposition", "")
        filename = re.fullmatch(
            r'attachment; filename="([A-Za-z0-9._-]+)"(; filename\*=UTF-8\'\'[A-Za-z0-9%._-]+)?', disposition
        )
        with Image.open(io.BytesIO(data)) as got:
            got.load()
            checks = {
                "status": status == 200,
                "content-type": head.get("content-type") == "image/png",
                "nosniff": head.get("x-content-type-options") == "nosniff",
                "content-disposition": filename is not None and len(filename.group(1)) <= 100,
                "png": got.format == "PNG" and got.size == upload.size and got.mode == "RGB",
            }
        bad = [k for k, ok in checks.items() if not ok]
        out.ok, out.problem = not bad, f"result: {bad} {disposition!r}" if bad else ""
        return out
    except Exception as err:  # noqa: BLE001 - a failure of this request, reported in the figures
        out.problem = f"{type(err).__name__}: {err}"
        return out
    finally:
        out.latency = time.monotonic() - t0


def run_load(port: int, uploads: list[Upload], concurrency: int) -> list[Outcome]:
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(lambda u: send(port, u), uploads))


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def summary(outcomes: list[Outcome]) -> dict:
    valid = [o.latency for o in outcomes if o.kind == "valid"]
    invalid = [o.latency for o in outcomes if o.kind != "valid"]
    return {
        "requests": len(outcomes),
        "valid": sum(o.kind == "valid" for o in outcomes),
        "invalid": sum(o.kind != "valid" for o in outcomes),
        "served": sum(o.ok for o in outcomes),
        "failures": sum(not o.ok for o in outcomes),
        "problems": [f"{o.kind}: {o.problem}" for o in outcomes if not o.ok],
        "http_requests": sum(o.http_requests for o in outcomes),
        "busy_retries": sum(o.busy for o in outcomes),
        "valid_p50_s": _pct(valid, 50),
        "valid_p95_s": _pct(valid, 95),
        "invalid_p50_s": _pct(invalid, 50),
        "invalid_p95_s": _pct(invalid, 95),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=50, help="uploads to send (default 50)")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads (default 8)")
    parser.add_argument("--size", type=int, default=256, help="side of the valid images in pixels (default 256)")
    parser.add_argument("--warmup", type=int, default=50, help="uploads sent before the baseline (default 50)")
    parser.add_argument("--weights", type=Path, help="safetensors weights (default: the shipped model)")
    parser.add_argument("--threads", type=int, default=1, help="the server's torch threads (default 1)")
    args = parser.parse_args(argv)
    if args.size * args.size > MAX_PIXELS:
        parser.error(f"--size must be at most {int(MAX_PIXELS**0.5)} (the server's pixel limit)")
    server = start_server(args.weights, args.threads)
    try:
        t0 = time.monotonic()
        warm = summary(run_load(server.port, make_uploads(args.warmup, args.size, seed=1), args.concurrency))
        warm_s = time.monotonic() - t0
        time.sleep(0.5)
        before = server.rss_mb()
        t1 = time.monotonic()
        figures = summary(run_load(server.port, make_uploads(args.requests, args.size), args.concurrency))
        wall = time.monotonic() - t1
        time.sleep(0.5)
        after = server.rss_mb()
        alive = _request(server.port, "GET", "/api/info", timeout=10)[0] == 200
    finally:
        server.stop()
        server.stderr.unlink(missing_ok=True)
    weights = args.weights or "shipped (sirestore/weights/default.safetensors)"
    print(f"server: 127.0.0.1:{server.port}, weights {weights}, torch threads {args.threads}, steps 1")
    print(f"warm-up: {warm['requests']} uploads, failures {warm['failures']} ({warm_s:.1f} s)")
    print(
        f"load: {figures['requests']} uploads ({figures['valid']} valid {args.size}x{args.size} RGB PNG, "
        f"{figures['invalid']} invalid), {args.concurrency} concurrent, {wall:.1f} s, "
        f"{figures['http_requests']} HTTP requests in all"
    )
    print(
        f"served correctly: {figures['served']}, failures: {figures['failures']}, "
        f"busy (503) retries: {figures['busy_retries']}"
    )
    for problem in figures["problems"][:10]:
        print(f"  failure: {problem}")
    print(
        f"latency valid (upload -> result downloaded): p50 {figures['valid_p50_s']:.2f} s, "
        f"p95 {figures['valid_p95_s']:.2f} s; invalid (-> error): p50 {figures['invalid_p50_s'] * 1e3:.0f} ms, "
        f"p95 {figures['invalid_p95_s'] * 1e3:.0f} ms"
    )
    print(
        f"server RSS: before {before[0]:.1f} MB, after {after[0]:.1f} MB ({after[0] - before[0]:+.1f} MB), "
        f"peak {after[1]:.1f} MB; still answering afterwards: {alive}"
    )
    return 0 if figures["failures"] == 0 and warm["failures"] == 0 and alive else 1


if __name__ == "__main__":
    sys.exit(main())
