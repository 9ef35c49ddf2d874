"""The fixture web server that tests and the demo start must survive a port already taken."""

import asyncio
import os
import signal
import socket

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
