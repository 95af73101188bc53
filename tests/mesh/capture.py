"""A packet capture for the mesh tests: one AF_PACKET socket on one device
of one namespace, read by a thread until stop(). Shared by test_ipsec.py and
test_mesh_lab.py (tests/mesh is on pytest's pythonpath)."""

from __future__ import annotations

import socket
import struct
import threading

from pyovl import netns

ETH_P_ALL = 0x0003
VXLAN_PORT = 4789


class Capture:
    """Every IPv4 frame on one device, both directions: (src, dst, proto,
    sport, dport, spi, tail); ports for UDP, spi for ESP, else None; tail is
    the frame's last 32 bytes (to find a payload marker)."""

    def __init__(self, ns: str, dev: str = "ul0"):
        with netns.inside(ns):
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            self.sock.bind((dev, 0))
        self.sock.settimeout(0.1)
        self.frames: list[tuple] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                f = self.sock.recv(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            if len(f) < 34 or f[12:14] != b"\x08\x00":
                continue
            l4 = 14 + (f[14] & 0xF) * 4
            proto = f[23]
            src, dst = socket.inet_ntoa(f[26:30]), socket.inet_ntoa(f[30:34])
            sport = dport = spi = None
            if proto == 17 and len(f) >= l4 + 4:
                sport, dport = struct.unpack("!HH", f[l4:l4 + 4])
            elif proto == 50 and len(f) >= l4 + 4:
                spi = struct.unpack("!I", f[l4:l4 + 4])[0]
            self.frames.append((src, dst, proto, sport, dport, spi, bytes(f[-32:])))

    def stop(self) -> list[tuple]:
        if not self._stop.is_set():
            self._stop.set()
            self._t.join(2)
            self.sock.close()
        return self.frames

    def plaintext(self, port: int = VXLAN_PORT) -> list[tuple]:
        return [f for f in self.frames if f[2] == 17 and port in (f[3], f[4])]

    def esp(self, src: str | None = None) -> list[tuple]:
        return [f for f in self.frames if f[2] == 50 and (src is None or f[0] == src)]
