"""The control socket's client side: one JSON request, one JSON reply.

Protocol (version PROTOCOL, one object per line over
<run root>/<instance>/daemon.sock, mode 0600):
  request  {"v": 1, "netns": <cookie>, "op": "status" | "submit" | "modify" | "dp" | "stop", ...}
  reply    {"ok": true, ...} or {"ok": false, "error": "<one line>", "exit": N}
The error's exit code travels with it, so a refusal by the daemon exits the
CLI with the same code as if the CLI had run the engine itself. "netns" is
the caller's namespace cookie: a daemon left serving a namespace that was
deleted, its name given to a new one, refuses to act for the new one.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time

from pyovl import netns
from pyovl.errors import PyovlError
from pyovl.state import run_root

PROTOCOL = 1
NO_DAEMON = "no pyovl daemon is running: misses and proxies are not answered"


def socket_path(instance: str) -> str:
    return os.path.join(run_root(), instance, "daemon.sock")


def log_path(instance: str) -> str:
    os.makedirs(os.path.join(run_root(), instance), exist_ok=True)
    return os.path.join(run_root(), instance, "daemon.log")


def pid_path(instance: str) -> str:
    return os.path.join(run_root(), instance, "daemon.pid")


def refused(error: str, exit_code: int) -> PyovlError:
    e = PyovlError(error)
    e.exit_code = exit_code
    return e


def request(instance: str, req: dict, timeout: float = 30.0) -> dict | None:
    """Send one request to the instance's daemon; None when none runs.
    A refusal raises PyovlError with the daemon's message and exit code."""
    path = socket_path(instance)
    if not os.path.exists(path):
        return None
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
    except OSError:
        s.close()
        return None  # a stale socket: the daemon died
    try:
        s.sendall(json.dumps(dict(req, v=PROTOCOL, netns=netns.cookie())).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        raise PyovlError("the pyovl daemon of instance %s did not answer within %.0f s (see its log, %s)"
                         % (instance, timeout, log_path(instance))) from None
    except OSError as e:
        raise PyovlError("talking to the pyovl daemon of instance %s failed: %s" % (instance, e.strerror)) from None
    finally:
        s.close()
    try:
        reply = json.loads(data or b"{}")
    except ValueError:
        reply = {}
    if not reply:
        raise PyovlError("the pyovl daemon of instance %s closed the connection without answering" % instance)
    if not reply.get("ok"):
        raise refused(reply.get("error", "the daemon refused the request"), int(reply.get("exit", 1)))
    return reply


def running_pid(instance: str) -> int | None:
    """PID of the instance's daemon when it answers, else None."""
    try:
        reply = request(instance, {"op": "status"}, timeout=5)
    except (OSError, ValueError, PyovlError):
        return None
    return reply["pid"] if reply else None


def stop_running(instance: str, timeout: float = 10.0) -> bool:
    """Ask a running daemon to stop and wait for it to exit."""
    pid = running_pid(instance)
    if pid is None:
        return False
    try:
        request(instance, {"op": "stop"}, timeout=5)
    except (OSError, ValueError, PyovlError):
        pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    return True
