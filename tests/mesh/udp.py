"""Plain UDP traffic for the mesh firewall tests (host netns and UML): a
receiver, a sender that counts what netfilter refused, a drain. Shared by
tests/netns/test_mesh_firewall.py and tests/mesh/test_mesh_firewall_uml.py
(tests/mesh is on pytest's pythonpath)."""

from __future__ import annotations

import socket
import time

from pyovl import netns


def receiver(ns, port, addr="0.0.0.0"):
    with netns.inside(ns):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # senders may bind the port too
    s.bind((addr, port))
    s.settimeout(0.2)
    return s


def send(ns, dst, dport, n=3, src=("0.0.0.0", 0)):
    """Send n datagrams from src; returns how many the local stack refused
    (EPERM: netfilter dropped them on the way out)."""
    refused = 0
    with netns.inside(ns):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(src)
        for i in range(n):
            try:
                s.sendto(b"pyovl-fw-%d" % i, (dst, dport))
            except PermissionError:
                refused += 1
    return refused


def drain(sock, wait=1.0):
    """How many datagrams arrive within wait seconds (then stop at a lull)."""
    got, deadline = 0, time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            sock.recv(2048)
            got += 1
        except socket.timeout:
            if got:
                break
    return got
