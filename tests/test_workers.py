"""Workers die with their driver: a driver killed with SIGKILL leaves no worker, fork server or resource tracker."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

DRIVER = textwrap.dedent(
    """
    import json, multiprocessing.forkserver as fs, multiprocessing.resource_tracker as rt, sys, time
    from cellbench.core.workers import process_pool

    if __name__ == "__main__":
        pool = process_pool(2)
        futures = [pool.submit(time.sleep, 120) for _ in range(2)]
        while len(pool._processes) < 2:
            time.sleep(0.05)
        time.sleep(0.5)
        helpers = [fs._forkserver._forkserver_pid, getattr(rt._resource_tracker, "_pid", None)]
        print(json.dumps({"workers": list(pool._processes), "helpers": [p for p in helpers if p]}), flush=True)
        time.sleep(120)
    """
)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the watchdog's start-time check reads /proc")
def test_killing_the_driver_leaves_no_worker_behind(tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    driver = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        pids = json.loads(driver.stdout.readline())
        children = pids["workers"] + pids["helpers"]
        assert len(pids["workers"]) == 2 and all(_alive(p) for p in children)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(10)
        deadline = time.monotonic() + 15
        while any(_alive(p) for p in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = [p for p in children if _alive(p)]
        assert left == [], f"processes left behind by the killed driver: {left}"
    finally:
        driver.kill()
        for p in pids.get("workers", []) + pids.get("helpers", []) if "pids" in locals() else []:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
