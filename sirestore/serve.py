"""`sirestore serve`: a small local web app around the Restorer (Starlette + uvicorn, no external assets).

The page (`sirestore/web/index.html`) sends one image as the raw request body. The server stops
reading at the upload limit, decodes the image with `read_image` (pixel limit; non-images and
truncated files refused with one readable line) and queues a job. One worker thread runs the jobs
one at a time with the one shared model, counting network evaluations for the progress bar, and
writes the result with `write_image` as PNG, so it matches `sirestore restore IN -o OUT.png`.
Only the newest `keep` finished jobs stay in memory. The limits on what a client sends (content
type, upload size, file names, bind address) are in `serve_limits.py`. Needs the `serve` extra.
"""

from __future__ import annotations

import io
import queue
import secrets
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from sirestore.allocator import release_freed_memory
from sirestore.fsutil import one_line, shown
from sirestore.imageio import (
    SUPPORTED_SUFFIXES,
    ImageInfo,
    ImageReadError,
    ImageWriteError,
    read_image,
    write_image,
)
from sirestore.restore import Restorer, restore_float_image, tile_starts
from sirestore.serve_limits import (
    ApiError,
    NoSniff,
    bind,
    check_content_type,
    client_name,
    content_disposition,
    read_body,
)
from sirestore.tasks import TASKS as MODEL_TASKS
from sirestore.uncertainty import heat_map, restorations, restore_uncertain

UNCERTAINTY_SAMPLES = 8  # restorations behind the page's uncertainty map


def task_choices(restorer: Restorer) -> dict[str, str]:
    """The tasks the page offers, id -> label: "auto", plus each task an all-in-one model can be told."""
    if not restorer.has_detector:
        return {"auto": "auto (blind denoising)"}
    return {"auto": "auto (detect the degradation)", **{t: t.replace("_", " ") for t in restorer_tasks(restorer)}}


def restorer_tasks(restorer: Restorer) -> list[str]:
    """The task names an all-in-one restorer accepts (`Restorer.task`)."""
    return list(getattr(restorer, "tasks", None) or MODEL_TASKS)


MAX_STEPS = 8
MAX_PENDING = 4  # queued jobs accepted at once (each holds its decoded image)


@dataclass(eq=False)
class Job:
    """One restoration: its input, state (queued, running, done, error) and result."""

    id: str
    name: str
    steps: int
    task: str  # "auto" or a task of task_choices
    uncertainty: bool  # also make the uncertainty map (sirestore.uncertainty.restore_uncertain)
    image: np.ndarray | None
    info: ImageInfo | None
    preview: bytes
    state: str = "queued"
    done: int = 0  # network evaluations done
    total: int = 1  # ... and expected
    error: str | None = None
    result: bytes | None = None
    heat: bytes | None = None  # the uncertainty map (PNG), when asked for
    started: float | None = None
    finished: float | None = None
    size: tuple[int, int] = field(default=(0, 0))  # width, height


def _png(arr: np.ndarray, alpha: np.ndarray | None) -> bytes:
    """An 8-bit PNG of float H x W x C pixels (plus alpha) for the page's "before" view."""
    planes = arr if alpha is None else np.concatenate([arr, alpha[..., None]], axis=2)
    q = np.floor(np.clip(planes, 0, 1) * 255 + 0.5).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(q[..., 0] if q.shape[2] == 1 else q).save(buf, "PNG", compress_level=1)
    return buf.getvalue()


class Service:
    """The shared Restorer, a worker thread that runs jobs one at a time, and the last `keep` jobs."""

    def __init__(self, restorer: Restorer, max_pixels: int, max_upload: int, keep: int = 8) -> None:
        self.restorer, self.max_pixels, self.max_upload, self.keep = restorer, max_pixels, max_upload, keep
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.lock = threading.Lock()
        self.queue: queue.Queue[Job] = queue.Queue()
        self.current: Job | None = None
        restorer.model.register_forward_hook(self._count)
        threading.Thread(target=self._work, name="sirestore-serve", daemon=True).start()

    def _count(self, *_: object) -> None:
        job = self.current
        if job is not None:
            job.done += 1

    def pending(self) -> int:
        return sum(j.state == "queued" for j in self.jobs.values())

    def decode(self, data: bytes, name: str) -> tuple[np.ndarray, ImageInfo]:
        """read_image on the uploaded bytes; its error names the upload, not the temporary file."""
        if not data:
            raise ApiError(400, f"{name}: the file is empty")
        suffix = Path(name).suffix.lower()
        with tempfile.TemporaryDirectory(prefix="sirestore-serve-") as tmp:
            path = Path(tmp) / ("upload" + (suffix if suffix in SUPPORTED_SUFFIXES else ""))
            path.write_bytes(data)
            try:
                return read_image(path, max_pixels=self.max_pixels)
            except ImageReadError as err:
                raise ApiError(400, f"{name}: {str(err).removeprefix(shown(path) + ': ')}") from None

    def submit(self, data: bytes, name: str, steps: int, task: str = "auto", uncertainty: bool = False) -> Job:
        """Decode an upload and queue it (called in a thread pool: decoding takes time)."""
        with self.lock:
            if self.pending() >= MAX_PENDING:
                raise ApiError(503, f"busy: {MAX_PENDING} images are waiting already; try again in a moment")
        image, info = self.decode(data, name)
        job = Job(secrets.token_hex(8), name, steps, task, uncertainty, image, info, _png(image, info.alpha))
        job.size = (image.shape[1], image.shape[0])
        with self.lock:
            if self.pending() >= MAX_PENDING:
                raise ApiError(503, f"busy: {MAX_PENDING} images are waiting already; try again in a moment")
            self.jobs[job.id] = job
            finished = [k for k, j in self.jobs.items() if j.state in ("done", "error")]
            while len(self.jobs) > self.keep and finished:
                del self.jobs[finished.pop(0)]
        self.queue.put(job)
        return job

    def _evaluations(self, h: int, w: int, channels: int, steps: int) -> int:
        """Network evaluations of one restore: tiles x steps (the sampler is Euler)."""
        r = self.restorer
        tile = r.plan((1, channels, h, w))
        if tile is None:
            return steps
        return len(tile_starts(h, tile[0], r.overlap)) * len(tile_starts(w, tile[1], r.overlap)) * steps

    def _work(self) -> None:
        while True:
            self._run(self.queue.get())

    def _run(self, job: Job) -> None:
        assert job.image is not None and job.info is not None
        with self.lock:
            job.state, job.started, self.current = "running", time.monotonic(), job
        try:
            self.restorer.steps = job.steps
            self.restorer.task = None if job.task == "auto" else job.task
            job.total = self._evaluations(*job.image.shape[:3], job.steps)
            if job.uncertainty:
                restored = self._uncertain(job)
            else:
                restored = restore_float_image(self.restorer, job.image)  # as `sirestore restore` does
            with tempfile.TemporaryDirectory(prefix="sirestore-serve-") as tmp:
                write_image(Path(tmp) / "result.png", restored, job.info)  # 16 bit and alpha kept
                job.result = (Path(tmp) / "result.png").read_bytes()
            job.state = "done"
        except Exception as err:  # noqa: BLE001 - reported on the page as one line
            if isinstance(err, ImageWriteError):
                problem = one_line(err).split(": ", 1)[-1]  # drop the temporary file's name
            elif isinstance(err, ValueError | RuntimeError | MemoryError | OSError):
                problem = one_line(err)
            else:
                problem = f"internal error ({type(err).__name__})"
            job.error, job.state = f"{job.name}: {problem}", "error"
        finally:
            with self.lock:
                job.image = job.info = None
                job.finished, self.current = time.monotonic(), None
            release_freed_memory()  # an idle server gives back what the job's tensors used

    def _uncertain(self, job: Job) -> np.ndarray:
        """The restoration of job's image (H x W x C float) with its uncertainty map, stored in job.heat."""
        job.total *= restorations(self.restorer, UNCERTAINTY_SAMPLES)
        y = torch.from_numpy(np.ascontiguousarray(job.image, dtype=np.float32)).permute(2, 0, 1)[None]
        out, std, _ = restore_uncertain(self.restorer, y, UNCERTAINTY_SAMPLES, self.restorer.seed)
        job.heat = _png(heat_map(std[0, 0].numpy()), None)
        return out[0].clamp(0, 1).permute(1, 2, 0).contiguous().numpy()

    def status(self, job: Job) -> dict:
        """What the page polls: state, queue position, progress, elapsed seconds, error."""
        position = 0
        with self.lock:
            if job.state == "queued":  # jobs run in the order they came: count those before it
                order = list(self.jobs.values())
                before = order[: order.index(job)] if job in order else []
                position = sum(j.state in ("queued", "running") for j in before)
        end = job.finished or time.monotonic()
        return {
            "id": job.id,
            "state": job.state,
            "position": position,
            "done": min(job.done, job.total),
            "total": job.total,
            "elapsed": round(end - job.started, 3) if job.started else 0.0,
            "error": job.error,
            "width": job.size[0],
            "height": job.size[1],
            "uncertainty": job.heat is not None,
        }


def create_app(restorer: Restorer, max_pixels: int, max_upload: int, keep: int = 8) -> Starlette:
    """The web app: the page at `/`, the JSON API under `/api/`. `max_upload` is in bytes."""
    service = Service(restorer, max_pixels, max_upload, keep)
    tasks = task_choices(restorer)
    page = (resources.files("sirestore") / "web" / "index.html").read_text(encoding="utf-8")

    def job_of(request: Request) -> Job:
        job = service.jobs.get(request.path_params["job_id"])
        if job is None:
            raise ApiError(404, f"no such job (only the last {keep} are kept)")
        return job

    async def index(request: Request) -> HTMLResponse:
        return HTMLResponse(page)

    async def info(request: Request) -> JSONResponse:
        choices = [{"id": k, "label": v} for k, v in tasks.items()]
        limits = {"max_upload_bytes": max_upload, "max_pixels": max_pixels}
        steps = {"min": 1, "max": MAX_STEPS, "default": 1}
        return JSONResponse({"tasks": choices, "steps": steps, "uncertainty_samples": UNCERTAINTY_SAMPLES, **limits})

    async def create_job(request: Request) -> JSONResponse:
        q = request.query_params
        name = client_name(q.get("name", ""))  # shown in messages and the download name, never a path
        task = q.get("task", "auto")
        if task not in tasks:
            raise ApiError(400, f"unknown task {task!r}; choose from {', '.join(tasks)}")
        uncertainty = q.get("uncertainty", "0")
        if uncertainty not in ("0", "1"):
            raise ApiError(400, "uncertainty must be 0 or 1")
        steps = q.get("steps", "1")
        if not steps.isdigit() or not 1 <= int(steps) <= MAX_STEPS:
            raise ApiError(400, f"steps must be a whole number from 1 to {MAX_STEPS}")
        check_content_type(request.headers.get("content-type"), name)  # decoding still decides
        data = await read_body(request, max_upload, name)
        job = await run_in_threadpool(service.submit, data, name, int(steps), task, uncertainty == "1")
        return JSONResponse(service.status(job), status_code=202)

    async def job_status(request: Request) -> JSONResponse:
        return JSONResponse(service.status(job_of(request)), headers={"Cache-Control": "no-store"})

    async def job_input(request: Request) -> Response:
        return Response(job_of(request).preview, media_type="image/png")

    async def job_result(request: Request) -> Response:
        job = job_of(request)
        if job.result is None:
            raise ApiError(409, f"the job is {job.state}, there is no result")
        headers = {"Content-Disposition": content_disposition(job.name)}
        return Response(job.result, media_type="image/png", headers=headers)

    async def job_uncertainty(request: Request) -> Response:
        job = job_of(request)
        if job.heat is None:
            raise ApiError(409, "this job has no uncertainty map (ask for one with uncertainty=1)")
        return Response(job.heat, media_type="image/png")

    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, ApiError | HTTPException):  # handled outside the middleware: set it here
            error = {"error": f"internal error ({type(exc).__name__})"}
            return JSONResponse(error, status_code=500, headers={"X-Content-Type-Options": "nosniff"})
        if isinstance(exc, ApiError):
            return JSONResponse({"error": exc.message}, status_code=exc.status)
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    routes = [
        Route("/", index),
        Route("/api/info", info),
        Route("/api/jobs", create_job, methods=["POST"]),
        Route("/api/jobs/{job_id}", job_status),
        Route("/api/jobs/{job_id}/input.png", job_input),
        Route("/api/jobs/{job_id}/result.png", job_result),
        Route("/api/jobs/{job_id}/uncertainty.png", job_uncertainty),
    ]
    handlers = {ApiError: api_error, HTTPException: api_error, Exception: api_error}
    middleware = [Middleware(NoSniff)]
    app = Starlette(routes=routes, middleware=middleware, exception_handlers=handlers)  # type: ignore[arg-type]
    app.state.service = service
    return app


def serve(restorer: Restorer, host: str, port: int, max_pixels: int, max_upload: int) -> None:
    """Listen on host:port (OSError when it cannot; one warning line when not loopback) until Ctrl-C."""
    sock, warning = bind(host, port)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    app = create_app(restorer, max_pixels, max_upload)
    shown_host = f"[{host}]" if ":" in host else host
    print(f"sirestore serve: http://{shown_host}:{sock.getsockname()[1]}/  (Ctrl-C to stop)", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    with sock:
        uvicorn.Server(config).run(sockets=[sock])
