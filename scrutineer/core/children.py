"""Child processes die with the process that started them.

A scan starts helper processes: content workers and, without ``PREFECT_API_URL``, Prefect's
temporary API server. When the scan is killed (even by SIGKILL, which it cannot catch) they must
not live on. Each child calls :func:`die_with` on the scan's pid at start: a daemon thread waits
for that process to end and then ends the child.
"""

from __future__ import annotations

import os
import select
import signal
import threading
import time


def die_with(pid: int, grace: float = 5.0) -> None:
    """End this process once process ``pid`` has ended: SIGTERM to itself at once, then
    ``os._exit`` after ``grace`` seconds if it is still alive.

    Waits on a pidfd where the platform has one (Linux 5.3+: woken the moment ``pid`` exits, even
    before it is reaped), else polls every second.
    """

    def wait_then_exit() -> None:
        try:
            fd = os.pidfd_open(pid)
        except (AttributeError, OSError):  # no pidfd here, or pid already gone
            while _alive(pid):
                time.sleep(1.0)
        else:
            select.select([fd], [], [])
            os.close(fd)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace)
        os._exit(1)

    threading.Thread(target=wait_then_exit, name=f"die-with-{pid}", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
