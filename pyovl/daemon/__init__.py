"""The pyovl daemon (illumos varpd) and the way to talk to it.

client.py  the control socket's client: find the instance's daemon, send
           one request, get one reply (no heavy imports: every CLI verb uses it)
server.py  the daemon itself: lookups, proxies, the slow path, health,
           metrics, and the engine's one writer while it runs
"""

from pyovl.daemon.client import NO_DAEMON, log_path, request, running_pid, socket_path, stop_running

__all__ = ["NO_DAEMON", "log_path", "request", "running_pid", "socket_path", "stop_running"]
