"""A local test web: a real HTTP server (aiohttp, in its own process) serving images and the
failures a crawler meets, on several loopback addresses that stand for distinct hosts.

The demo, the tests and ``bench/fetch_hash.py`` fetch from it; it binds loopback addresses only.
Images are held in memory: files read from ``--images`` directories, ``--synthetic N`` generated
JPEGs (``synthetic-00000.jpg`` …, 256 x 256 shapes, :func:`synthetic_jpeg`) and ``--photos N``
photographic JPEGs of real sizes (``photo-00000.jpg`` …, :func:`photo_jpeg`: crops of the
``--photo-source`` files, sized by the ``--photo-sizes`` table). Each generated image is the same
bytes for the same index, and made before the server listens (in several processes when there are
many), never written to disk.

Routes, on every host (``{name}`` is an image name):

==========================  ==========================================================
``/img/{name}``             the image (200, ``Content-Type`` from the suffix)
``/gone/{name}``            410 Gone
``/missing/{name}``         404 (so is every unknown path)
``/error/{name}``           503, always
``/busy/{name}?times=N``    429 with ``Retry-After: 1`` (``&retry_after=S``: S) for the first N
                            requests, then the image
``/slow/{name}?seconds=S``  the image after S seconds
``/parking/{name}``         200 ``text/html``: a parked-domain page where an image was expected
``/redirect?to=URL``        302 to URL (another host, a parking page, a private address …)
``/noai/{name}``            the image with ``X-Robots-Tag: noai, noimageai``
``/with/{name}?h=N:V``      the image with header ``N: V`` (``h`` may repeat)
``/big-header/{name}``      the image with an ``X-Padding`` header (``&name=H``: header H) of
                            ``?bytes=N`` bytes (default 9000, over aiohttp's 8190-byte limit),
                            ``&repeat=K`` times
``/encoded/{name}``         the image (``zeros?mib=N``: N MiB of zero bytes) gzipped once per
                            ``?coding=gzip`` (``coding=raw``: declared gzip, left as it is), with
                            ``Content-Encoding`` listing the codings and no ``Content-Length``
``/hold/{name}``            the image, once ``/_release`` has been posted; until then the request
                            waits (``/_stats`` counts the requests waiting, ``holding``)
``/private/{name}``         the image, but ``/robots.txt`` disallows ``/private/`` for Scrutineer
``/robots.txt``             ``User-agent: Scrutineer`` / ``Disallow: /private/``; after
                            ``SECONDS`` on a host given as ``--slow-robots HOST=SECONDS``;
                            ``DIR/robots.txt`` on a host given as ``--site HOST=DIR``
``/ai.txt``                 ``DIR/ai.txt`` on a ``--site`` host (else 404)
``/.well-known/tdmrep.json``  ``DIR/tdmrep.json`` on a ``--site`` host (else 404)
``/license.xml``            ``DIR/license.xml`` (an RSL licence, ``application/rsl+xml``) on a
                            ``--site`` host (else 404)
``/_stats``                 JSON: requests per host and path, the most requests in flight at
                            once per host (``max_in_flight``), each request's time
``/_reset`` (POST)          zero the counters
``/_release`` (POST)        let every ``/hold/`` request, waiting or to come, have its image
==========================  ==========================================================

A path given a behaviour on a host (``--behave HOST:PATH=BEHAVIOUR``, e.g. a hostile site's
policy file) answers that way there instead: ``drip=S`` sends a 200 ``text/plain`` header and its
first line, then one byte every S seconds until the client leaves (it never ends of itself);
``redirect=URL`` a 302 to URL; ``status=N`` an empty answer with status N. ``BEHAVIOUR;times=N``
behaves so for the first N requests only (counted from the start), then the route answers.

Run ``python -m scrutineer.testing.fixture_web --hosts 127.0.0.2 127.0.0.3 --images DIR``; it prints
``ready <port>`` once every host listens. :class:`FixtureWeb` does that from Python.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gzip
import io
import json
import mimetypes
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Self

import httpx
import numpy as np
from PIL import Image, ImageDraw

ROBOTS_TXT = "User-agent: Scrutineer\nDisallow: /private/\n\nUser-agent: *\nAllow: /\n"
PARKING_HTML = "<!doctype html><html><head><title>This domain may be for sale</title></head><body>Parked.</body></html>"


def synthetic_jpeg(index: int, size: int = 256, quality: int = 85) -> bytes:
    """A distinct, deterministic JPEG (``size`` x ``size`` pixels, ~15-25 KB at the defaults):
    smooth colour fields and a few shapes drawn from a generator seeded with ``index``."""
    rng = np.random.default_rng(index)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    channels = []
    for _ in range(3):
        fx, fy, phase = rng.uniform(0.5, 6.0), rng.uniform(0.5, 6.0), rng.uniform(0, 2 * np.pi)
        channels.append(127 + 100 * np.sin(2 * np.pi * (fx * x + fy * y) + phase))
    pixels = np.stack(channels, axis=2) + rng.normal(0, 12, (size, size, 3))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x0, y0 = rng.integers(0, size - 32, 2)
        w, h = rng.integers(16, size // 2, 2)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([int(x0), int(y0), int(x0 + w), int(y0 + h)], fill=colour)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


#: How far (pixels, down and right) the window of the grain field may move from one photo to the next.
GRAIN_MARGIN = 64


@functools.cache
def _grain(height: int, width: int) -> np.ndarray:
    """A field of standard Gaussian noise, ``GRAIN_MARGIN`` larger than ``height`` x ``width`` each
    way (float32, one channel), the same in every process; made once per size (one costs what
    encoding a photo does)."""
    return np.random.default_rng(0).standard_normal((height + GRAIN_MARGIN, width + GRAIN_MARGIN, 1), dtype=np.float32)


def photo_jpeg(index: int, sources: Sequence[Image.Image], sizes: Sequence[tuple[int, int]], quality: int = 90) -> bytes:
    """A distinct, deterministic photographic JPEG of ``sizes[index % len(sizes)]`` (width, height)
    pixels, so that ``len(sizes)`` consecutive indexes follow the size table exactly.

    Drawn from a generator seeded with ``index``: a crop of one of ``sources`` (RGB photographs)
    with the target's aspect ratio, 75-100 % of the largest such crop, resampled to the target size
    (bilinear), mirrored left to right half the time, each colour channel scaled by 0.85-1.15, with
    film grain (Gaussian noise on all three channels alike, standard deviation 10-30 levels: a
    window, at an offset drawn from the generator, of one field of noise per process) and encoded
    at ``quality``. The grain stands for the detail of a camera's photo that these sources,
    small and already compressed, lack: with COCO's sizes (``coco_sizes``) and the 12 photos
    ``bench/fetch_hash.py`` uses, the mean is ~143 KB, near COCO val2017's ~160 KB per JPEG
    (bench/README.md gives the figure measured).
    """
    rng = np.random.default_rng([index, 2026])  # apart from synthetic_jpeg's generator of the same index
    width, height = sizes[index % len(sizes)]
    source = sources[rng.integers(len(sources))]
    scale = min(source.width / width, source.height / height) * rng.uniform(0.75, 1.0)
    crop_w, crop_h = width * scale, height * scale
    x0, y0 = rng.uniform(0, max(0.0, source.width - crop_w)), rng.uniform(0, max(0.0, source.height - crop_h))
    image = source.resize((width, height), Image.Resampling.BILINEAR, box=(x0, y0, x0 + crop_w, y0 + crop_h))
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    pixels = np.asarray(image, dtype=np.float32) * rng.uniform(0.85, 1.15, 3).astype(np.float32)
    grain = _grain(-(-height // 256) * 256, -(-width // 256) * 256)  # a few fields, each made once
    top, left = rng.integers(0, GRAIN_MARGIN, 2)
    pixels += np.float32(rng.uniform(10, 30)) * grain[top:top + height, left:left + width]
    out = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


def coco_sizes(path: Path) -> list[tuple[int, int]]:
    """The (width, height) of every image of a COCO annotations JSON file (``images[].width`` and
    ``.height``), in file order."""
    return [(image["width"], image["height"]) for image in json.loads(Path(path).read_text())["images"]]


@functools.cache
def _photo_sources(paths: tuple[Path, ...]) -> tuple[Image.Image, ...]:
    """The photos at ``paths``, decoded as RGB, once per process."""
    return tuple(Image.open(p).convert("RGB") for p in paths)


def _generated(job: tuple[str, int], sources: tuple[Path, ...], sizes: tuple[tuple[int, int], ...]) -> bytes:
    kind, index = job
    return synthetic_jpeg(index) if kind == "synthetic" else photo_jpeg(index, _photo_sources(sources), sizes)


def _load_images(dirs: list[Path], synthetic: int, photos: int = 0, photo_sources: Sequence[Path] = (),
                 photo_sizes: Path | None = None) -> dict[str, tuple[bytes, str]]:
    """Every image served, by name: the files of ``dirs``, then ``synthetic`` images of
    :func:`synthetic_jpeg` and ``photos`` of :func:`photo_jpeg` (from ``photo_sources``, sized by
    the COCO file ``photo_sizes``), made in one process per core when there are thousands.

    Raises:
        ValueError: ``photos`` without ``photo_sources`` or ``photo_sizes``.
    """
    images: dict[str, tuple[bytes, str]] = {}
    for d in dirs:
        for path in sorted(d.iterdir()):
            kind = mimetypes.guess_type(path.name)[0]
            if path.is_file() and kind and kind.startswith("image/"):
                images[path.name] = (path.read_bytes(), kind)
    if photos and not (photo_sources and photo_sizes):
        raise ValueError("photos need photo sources and a table of photo sizes")
    jobs = [("synthetic", i) for i in range(synthetic)] + [("photo", i) for i in range(photos)]
    make = functools.partial(_generated, sources=tuple(photo_sources), sizes=tuple(coco_sizes(photo_sizes)) if photos else ())
    workers = min(os.cpu_count() or 1, len(jobs) // 1000)
    if workers > 1:  # 10,000 photos take ~100 s of CPU
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver")) as pool:
            bodies = list(pool.map(make, jobs, chunksize=100))
    else:
        bodies = [make(job) for job in jobs]
    for (kind, i), body in zip(jobs, bodies, strict=True):
        images[f"{kind}-{i:05d}.jpg"] = (body, "image/jpeg")
    return images


def _app(images: dict[str, tuple[bytes, str]], slow_robots: dict[str, float], sites: dict[str, Path],
         behaviours: dict[str, dict[str, str]] | None = None):
    # start-up: aiohttp costs ~380 ms at import (python -X importtime); only the server's process needs it
    from aiohttp import web

    requests: Counter = Counter()
    in_flight: Counter = Counter()
    max_in_flight: Counter = Counter()
    busy_seen: Counter = Counter()
    behaved: Counter = Counter()
    log: list[tuple[str, str, float]] = []
    released = asyncio.Event()
    holding: Counter = Counter()

    @web.middleware
    async def count(request, handler):
        host = request.transport.get_extra_info("sockname")[0] if request.transport else "?"
        if not request.path.startswith("/_"):
            requests[(host, request.path)] += 1
            log.append((host, request.path_qs, time.time()))
        in_flight[host] += 1
        max_in_flight[host] = max(max_in_flight[host], in_flight[host])
        try:
            behaviour = (behaviours or {}).get(host, {}).get(request.path)
            if behaviour and ";times=" in behaviour:
                behaviour, _, times = behaviour.partition(";times=")
                behaved[(host, request.path)] += 1
                behaviour = behaviour if behaved[(host, request.path)] <= int(times) else None
            return await (behave(request, behaviour) if behaviour else handler(request))
        finally:
            in_flight[host] -= 1

    async def behave(request, behaviour: str):
        kind, _, value = behaviour.partition("=")
        if kind == "redirect":
            raise web.HTTPFound(value)
        if kind == "status":
            return web.Response(status=int(value))
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})  # drip
        await response.prepare(request)
        await response.write(b"User-agent: *\n")
        while True:
            for _ in range(max(1, round(float(value) / 0.05))):  # notice a client that left within 50 ms
                if request.transport is None or request.transport.is_closing():
                    return response
                await asyncio.sleep(0.05)
            await response.write(b"#")

    def image(request, headers=None):
        name = request.match_info["name"]
        if name not in images:
            raise web.HTTPNotFound()
        body, kind = images[name]
        return web.Response(body=body, content_type=kind, headers=headers)

    async def img(request):
        return image(request)

    async def hold(request):
        holding["now"] += 1
        try:
            await released.wait()
        finally:
            holding["now"] -= 1
        return image(request)

    async def release(request):
        released.set()
        return web.json_response({"ok": True})

    async def noai(request):
        return image(request, {"X-Robots-Tag": "noai, noimageai"})

    async def with_headers(request):
        return image(request, [tuple(h.split(":", 1)) for h in request.query.getall("h", [])])

    def site_file(request, name: str):
        folder = sites.get(request.transport.get_extra_info("sockname")[0])
        if folder is None or not (folder / name).is_file():
            return None
        types = {".json": "application/json", ".xml": "application/rsl+xml"}
        return web.Response(body=(folder / name).read_bytes(), content_type=types.get(Path(name).suffix, "text/plain"))

    async def ai_txt(request):
        return site_file(request, "ai.txt") or web.Response(status=404, text="not found")

    async def tdmrep_json(request):
        return site_file(request, "tdmrep.json") or web.Response(status=404, text="not found")

    async def license_xml(request):
        return site_file(request, "license.xml") or web.Response(status=404, text="not found")

    async def big_header(request):
        """``?bytes=N`` (default 9000) characters of header ``?name=`` (default X-Padding),
        ``?repeat=K`` times (default 1)."""
        value = "x" * int(request.query.get("bytes", "9000"))
        return image(request, [(request.query.get("name", "X-Padding"), value)] * int(request.query.get("repeat", "1")))

    async def encoded(request):
        """The image (or ``zeros``: ``?mib=N`` MiB of zero bytes) compressed by each ``?coding=``
        (``gzip`` or ``raw``: not compressed, declared anyway) in turn, declared so in
        Content-Encoding (no ``Content-Length``, so the client cannot refuse it before reading)."""
        name = request.match_info["name"]
        if name == "zeros":
            body, kind = bytes(int(request.query.get("mib", "1")) << 20), "image/jpeg"
        elif name in images:
            body, kind = images[name]
        else:
            raise web.HTTPNotFound()
        codings = request.query.getall("coding", [])
        for coding in codings:
            body = gzip.compress(body) if coding == "gzip" else body
        response = web.StreamResponse(headers={"Content-Type": kind, "Content-Encoding": ", ".join(c if c != "raw" else "gzip" for c in codings)})
        await response.prepare(request)
        await response.write(body)
        await response.write_eof()
        return response

    async def gone(request):
        return web.Response(status=410, text="gone")

    async def error(request):
        return web.Response(status=503, text="unavailable")

    async def busy(request):
        key = request.transport.get_extra_info("sockname")[0], request.path
        busy_seen[key] += 1
        if busy_seen[key] <= int(request.query.get("times", "1")):
            return web.Response(status=429, headers={"Retry-After": request.query.get("retry_after", "1")}, text="slow down")
        return image(request)

    async def slow(request):
        await asyncio.sleep(float(request.query.get("seconds", "2")))
        return image(request)

    async def parking(request):
        return web.Response(text=PARKING_HTML, content_type="text/html")

    async def redirect(request):
        raise web.HTTPFound(request.query["to"])

    async def robots(request):
        await asyncio.sleep(slow_robots.get(request.transport.get_extra_info("sockname")[0], 0))
        return site_file(request, "robots.txt") or web.Response(text=ROBOTS_TXT)

    async def stats(request):
        by_host: dict[str, dict[str, int]] = defaultdict(dict)
        for (host, path), n in requests.items():
            by_host[host][path] = n
        return web.json_response(
            {"requests": sum(requests.values()), "by_host": by_host, "max_in_flight": dict(max_in_flight), "log": log,
             "holding": holding["now"]}
        )

    async def reset(request):
        for c in (requests, max_in_flight, busy_seen):
            c.clear()
        log.clear()
        return web.json_response({"ok": True})

    app = web.Application(middlewares=[count])
    app.add_routes(
        [
            web.get("/img/{name}", img),
            web.get("/gone/{name}", gone),
            web.get("/error/{name}", error),
            web.get("/busy/{name}", busy),
            web.get("/slow/{name}", slow),
            web.get("/parking/{name}", parking),
            web.get("/redirect", redirect),
            web.get("/noai/{name}", noai),
            web.get("/with/{name}", with_headers),
            web.get("/ai.txt", ai_txt),
            web.get("/.well-known/tdmrep.json", tdmrep_json),
            web.get("/license.xml", license_xml),
            web.get("/big-header/{name}", big_header),
            web.get("/encoded/{name}", encoded),
            web.get("/private/{name}", img),
            web.get("/hold/{name}", hold),
            web.post("/_release", release),
            web.get("/robots.txt", robots),
            web.get("/_stats", stats),
            web.post("/_reset", reset),
        ]
    )
    return app


async def _serve(hosts: list[str], images: dict[str, tuple[bytes, str]], slow_robots: dict[str, float], sites: dict[str, Path],
                 behaviours: dict[str, dict[str, str]] | None = None) -> None:
    from aiohttp import web  # start-up: as in _app

    runner = web.AppRunner(_app(images, slow_robots, sites, behaviours), access_log=None)
    await runner.setup()
    for _ in range(50):  # one port free on every host address, below Linux's ephemeral ports (32768-60999)
        port = random.randint(20000, 32767)
        tried = []  # start() registers a site with the runner before it binds
        try:
            for host in hosts:
                tried.append(web.TCPSite(runner, host, port))
                await tried[-1].start()
        except OSError:  # taken on some address: unregister the sites tried, try another port
            for site in tried:
                await site.stop()
            continue
        break
    else:
        raise SystemExit("no port free on every host")
    print(f"ready {port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


class FixtureWeb:
    """Start the fixture server in its own process; a context manager.

    Args:
        hosts: loopback addresses to listen on (each stands for a different host).
        images: directories whose image files are served under ``/img/<file name>``.
        synthetic: how many :func:`synthetic_jpeg` images to serve as well.
        photos: how many :func:`photo_jpeg` images to serve as well (``/img/photo-00000.jpg`` …),
            cropped from the ``photo_sources`` files and sized by the COCO annotations file
            ``photo_sizes`` (:func:`coco_sizes`).
        slow_robots: host -> seconds its ``/robots.txt`` takes to answer.
        sites: host -> a directory whose ``robots.txt``, ``ai.txt``, ``tdmrep.json`` and ``license.xml``
            that host serves (at ``/robots.txt``, ``/ai.txt``, ``/.well-known/tdmrep.json``, ``/license.xml``).
        behaviours: host -> {path: behaviour} (see the module: ``drip=S``, ``redirect=URL``,
            ``status=N``), answered instead of the route.

    Raises:
        RuntimeError: the server did not start (its stderr is included).
    """

    def __init__(self, hosts: list[str], images: list[Path] = (), synthetic: int = 0, slow_robots: dict[str, float] | None = None,
                 sites: dict[str, Path] | None = None, behaviours: dict[str, dict[str, str]] | None = None, photos: int = 0,
                 photo_sources: Sequence[Path] = (), photo_sizes: Path | None = None) -> None:
        self.hosts = list(hosts)
        self.args = [sys.executable, "-m", "scrutineer.testing.fixture_web", "--hosts", *self.hosts, "--synthetic", str(synthetic)]
        for d in images:
            self.args += ["--images", str(d)]
        if photos:
            self.args += ["--photos", str(photos), "--photo-sizes", str(photo_sizes)]
            self.args += [arg for source in photo_sources for arg in ("--photo-source", str(source))]
        for host, seconds in (slow_robots or {}).items():
            self.args += ["--slow-robots", f"{host}={seconds:g}"]
        for host, folder in (sites or {}).items():
            self.args += ["--site", f"{host}={folder}"]
        for host, paths in (behaviours or {}).items():
            self.args += [arg for path, behaviour in paths.items() for arg in ("--behave", f"{host}:{path}={behaviour}")]
        self.port: int | None = None
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self.process = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        if not line.startswith("ready "):
            self.process.kill()
            raise RuntimeError(f"fixture web server did not start: {line!r} {self.process.stderr.read()[-2000:]}")
        self.port = int(line.split()[1])

    def stop(self) -> None:
        """Stop the server (a running fetch then sees connections refused)."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.communicate(timeout=10)  # also closes its pipes
            except subprocess.TimeoutExpired:
                self.cut()
        elif self.process:
            self.process.communicate()

    def cut(self) -> None:
        """Kill the server at once (SIGKILL), as a network cut: open connections are reset and new
        ones refused, with none of a graceful stop's draining of keep-alive connections."""
        if self.process:
            self.process.kill()
            self.process.communicate()

    def url(self, path: str, host: int = 0) -> str:
        """``http://<hosts[host]>:<port><path>``."""
        return f"http://{self.hosts[host]}:{self.port}{path}"

    def stats(self) -> dict:
        return httpx.get(self.url("/_stats"), timeout=10).json()

    def reset(self) -> None:
        httpx.post(self.url("/_reset"), timeout=10)

    def release(self) -> None:
        """Let every ``/hold/`` request, waiting or to come, have its image."""
        httpx.post(self.url("/_release"), timeout=10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", nargs="+", default=["127.0.0.1"], help="loopback addresses to listen on")
    ap.add_argument("--images", type=Path, action="append", default=[], help="a directory of images to serve")
    ap.add_argument("--synthetic", type=int, default=0, help="how many synthetic JPEGs to serve")
    ap.add_argument("--photos", type=int, default=0, help="how many photographic JPEGs of real sizes to serve")
    ap.add_argument("--photo-source", type=Path, action="append", default=[], help="a photo the photographic JPEGs are cropped from")
    ap.add_argument("--photo-sizes", type=Path, help="a COCO annotations JSON file: the photos' sizes are its images' width and height")
    ap.add_argument("--slow-robots", action="append", default=[], metavar="HOST=SECONDS", help="answer HOST's /robots.txt after SECONDS")
    ap.add_argument("--site", action="append", default=[], metavar="HOST=DIR", help="serve DIR's robots.txt, ai.txt, tdmrep.json and license.xml on HOST")
    ap.add_argument("--behave", action="append", default=[], metavar="HOST:PATH=BEHAVIOUR", help="answer PATH on HOST so: drip=S, redirect=URL or status=N")
    args = ap.parse_args()
    for host in args.hosts:
        if not host.startswith("127."):
            raise SystemExit(f"{host}: the fixture web server binds loopback addresses only")
    slow_robots = {host: float(seconds) for host, seconds in (item.split("=", 1) for item in args.slow_robots)}
    sites = {host: Path(folder) for host, folder in (item.split("=", 1) for item in args.site)}
    behaviours: dict[str, dict[str, str]] = {}
    for item in args.behave:
        where, behaviour = item.split("=", 1)
        host, path = where.split(":", 1)
        behaviours.setdefault(host, {})[path] = behaviour
    images = _load_images(args.images, args.synthetic, args.photos, args.photo_source, args.photo_sizes)
    asyncio.run(_serve(args.hosts, images, slow_robots, sites, behaviours))


if __name__ == "__main__":
    main()
