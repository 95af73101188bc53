"""The pyovl daemon (illumos varpd) and the way to talk to it.

client.py  the control socket's client: find the instance's daemon, send
           one request, get one reply (no heavy imports: every CLI verb uses it)
writer.py  who applies a change: the serving daemon over its socket, else
           the command itself under the instance lock
server.py  the daemon itself: lookups, proxies, the slow path, health,
           the engine's one writer while it runs; metrics.py its exporter
"""

from pyovl.daemon.client import NO_DAEMON, log_path, request, running_pid, socket_path, stop_running

__all__ = ["NO_DAEMON", "log_path", "request", "running_pid", "socket_path", "stop_running"]
