"""Start and stop the servers under test as child processes, measure start-up time and resident memory."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.common import ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    startup_seconds: float

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) used so far by each of the server's processes, keyed like `rss_mib`."""
        out: dict[str, float] = {}
        for key, pid in self._roles().items():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            out[key] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return out

    def _roles(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for pid in _process_tree(self.process.pid):
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            role = "worker" if ("_bentoml_impl.worker" in cmd or "uvicorn" in cmd) else "supervisor"
            out[f"{role}:{pid}"] = pid
        return out

    def rss_mib(self) -> dict[str, float]:
        """Resident memory of the server's processes, by role (`worker` for the ones serving requests)."""
        out: dict[str, float] = {}
        for key, pid in self._roles().items():
            try:
                rss_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
            except (OSError, ValueError, IndexError):
                continue
            out[key] = rss_pages * os.sysconf("SC_PAGE_SIZE") / 2**20
        return out


def _process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _start(name: str, argv: list[str], env_extra: dict[str, str], log: Path, url: str, timeout: float) -> Server:
    # auth off: the load client sends no key; the auth middleware's own cost (a cached key check) was
    # measured in process at 0-120 us per request and is not part of these figures
    env = os.environ | {"TRIAGE_AUTH": "off"} | env_extra
    start = time.perf_counter()
    with log.open("wb") as out:
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    deadline = start + timeout
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                return Server(name, url, process, log, time.perf_counter() - start)
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    Server(name, url, process, log, float("nan")).stop()
    raise RuntimeError(f"{name} not ready after {timeout} s:\n{log.read_text()[-3000:]}")


def start_bento(target: str, env_extra: dict[str, str], log: Path, timeout: float = 120.0) -> Server:
    """`bentoml serve <target>` exactly as the product runs, on a free loopback port."""
    port = free_port()
    bentoml = Path(sys.executable).parent / "bentoml"
    argv = [str(bentoml), "serve", target, "--host", "127.0.0.1", "--port", str(port)]
    return _start(f"bentoml:{target}", argv, env_extra, log, f"http://127.0.0.1:{port}", timeout)


def start_peer(env_extra: dict[str, str], log: Path, timeout: float = 60.0) -> Server:
    """The FastAPI peer in one uvicorn process (no `--workers`: a supervisor adds ~44 ms per request here)."""
    port = free_port()
    # no access log: the product service ships with BentoML's access log off
    argv = [sys.executable, "-m", "uvicorn", "benchmarks.peer_app:app", "--host", "127.0.0.1", "--port", str(port),
            "--no-access-log"]
    return _start("fastapi-peer", argv, env_extra, log, f"http://127.0.0.1:{port}", timeout)
