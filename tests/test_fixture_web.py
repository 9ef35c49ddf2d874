"""The fixture web server that tests, the demo and the benches start: it survives a port already
taken, and serves the fetch bench's photographic images as documented."""

import asyncio
import io
import os
import signal
import socket

import httpx
from PIL import Image

from scrutineer.testing import fixture_web


def test_a_port_taken_on_one_host_moves_the_server_to_another_port(monkeypatch, capsys):
    """Regression: a port taken on the first host address once crashed the demo, because the retry
    then stopped the other hosts' sites, which had never started."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    busy = taken.getsockname()[1]
    draws = []
    randint = fixture_web.random.randint

    def taken_first(a: int, b: int) -> int:  # the busy port, then the server's own draws
        draws.append(busy if not draws else randint(a, b))
        return draws[-1]

    monkeypatch.setattr(fixture_web.random, "randint", taken_first)

    async def serve_then_stop():
        server = asyncio.create_task(fixture_web._serve(["127.0.0.1", "127.0.0.2"], {}, {}, {}))
        out = ""
        while "ready" not in out:
            if server.done():
                server.result()  # raises what stopped the server before it was ready
            await asyncio.sleep(0.05)
            out += capsys.readouterr().out
        os.kill(os.getpid(), signal.SIGTERM)  # _serve's handler: stop and clean up
        await server
        return int(out.split()[1])

    try:
        assert asyncio.run(serve_then_stop()) == draws[-1] != busy
    finally:
        taken.close()


def test_photos_follow_the_size_table_and_are_distinct_and_the_same_in_every_process(test_data):
    """The bench's realistic leg: ``photo-NNNNN.jpg`` is a JPEG of the table's size for its index
    (COCO's, in file order), distinct from every other, and the same bytes whoever makes it."""
    sources = [test_data / "images" / "jpeg" / "rocket.jpg", test_data / "images" / "skimage" / "astronaut.png"]
    table = test_data / "metadata" / "coco_captions_val2017_images0-2499.json"
    sizes = fixture_web.coco_sizes(table)
    n = 6
    with fixture_web.FixtureWeb(["127.0.0.1"], photos=n, photo_sources=sources, photo_sizes=table) as web:
        served = [httpx.get(web.url(f"/img/photo-{i:05d}.jpg"), timeout=30) for i in range(n)]
    assert all(r.status_code == 200 and r.headers["content-type"] == "image/jpeg" for r in served)
    bodies = [r.content for r in served]
    assert [Image.open(io.BytesIO(b)).size for b in bodies] == sizes[:n]
    assert len(set(bodies)) == n
    decoded = fixture_web._photo_sources(tuple(sources))
    assert bodies == [fixture_web.photo_jpeg(i, decoded, sizes) for i in range(n)]  # made here, in this process
    # a table shorter than the photos: taken again from its start
    small = [(64, 48), (30, 40)]
    assert [Image.open(io.BytesIO(fixture_web.photo_jpeg(i, decoded, small))).size for i in range(5)] == [*small, *small, small[0]]
