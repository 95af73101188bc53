"""files: dynamic lookups from an illumos overlay_files JSON table.

    {"<mac>": {"ip": "<underlay ip>", "port": <udp port>, "arp": "<overlay ipv4>",
               "ndp": "<overlay ipv6>", "dhcp-proxy": "<mac>"}, ...}

Keys are MACs in any spelling (normalised). As in illumos, a lookup needs a
valid ip and port (1-65535), otherwise it is answered Drop; an entry whose
fields are malformed only ever answers Drop. The file as a whole must be one
object of objects keyed by MACs, or start() fails.

Beyond illumos (which reads the file once): check_reload() notices a change
(mtime, size, inode), parses the whole new file, and swaps it in at once,
returning the MACs whose answers changed; a bad new file raises PluginError
and the old table stays in use.

Robustness (the daemon calls start() and check_reload() from its lookup
thread every 0.2 s): any broken file (missing, unreadable, a FIFO, device or
directory, a symlink loop, over 64 MiB, not UTF-8, bad JSON, nested too
deeply, a number too long) is one PluginError with a one-line reason and
never another exception; nothing blocks (a non-regular file is refused
before it is opened, and opened O_NONBLOCK; see inputs.read_file). A broken
file is read once per (mtime, size, inode, ctime): while that stays the
same, the same reason is raised again without reading the file (ctime, so
that a chmod making an unreadable file readable is noticed).
"""

from __future__ import annotations

import ipaddress
import os
import re

from pyovl.dataplane.abi import mac_str
from pyovl.values import mac_bytes
from pyovl.errors import show
from pyovl.inputs import parse_json, read_file
from pyovl.lookup.plugin import Destination, Drop, LookupPlugin, PluginError
from pyovl.config.props import STRING, PropSpec, check_abs_path

MAX_BYTES = 64 << 20  # 100k entries take about 8 MiB
CANONICAL_MAC = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")  # most keys: nothing to convert


def _norm_mac(text: object) -> str | None:
    if not isinstance(text, str):
        return None
    if CANONICAL_MAC.fullmatch(text):
        return text
    try:
        return mac_str(mac_bytes(text))
    except ValueError:
        return None


def _ip(text: object, version: int | None = None) -> str | None:
    """The canonical text of IP address text (of that version), else None."""
    if not isinstance(text, str) or "%" in text:  # a zone: ipaddress keeps any text after '%'
        return None
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if version and ip.version != version:
        return None
    return str(ip)


class Table:
    """One parsed file: answers by MAC, and the proxy indexes."""

    def __init__(self, doc: object, path: str):
        if not isinstance(doc, dict):
            raise PluginError("%s: the table must be a JSON object keyed by MAC" % path)
        self.dest: dict[str, Destination | Drop] = {}
        self.arp: dict[str, str] = {}
        self.ndp: dict[str, str] = {}
        self.dhcp: dict[str, str] = {}
        # A table repeats a few hundred underlay IPs over all its entries, and
        # ip_address() was most of the parse time: parse each of those texts
        # once. (Overlay addresses, "arp" and "ndp", are one per guest: a
        # cache would only cost there.)
        ips: dict[object, str | None] = {}
        for key, e in doc.items():
            mac = _norm_mac(key)
            if mac is None:
                raise PluginError("%s: %s is not a MAC address" % (path, show(key)))
            if not isinstance(e, dict):
                raise PluginError("%s: the entry of %s must be an object" % (path, show(key)))
            text = e.get("ip")
            try:
                ip = ips[text]
            except KeyError:
                ip = ips[text] = _ip(text)
            except TypeError:  # a list or an object: unhashable, and no address
                ip = None
            port = e.get("port")
            if ip and isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535:
                self.dest[mac] = Destination(ip, port)
            else:
                self.dest[mac] = Drop("entry %s has no valid ip and port" % mac)
            a = _ip(e.get("arp"), 4)
            if a and a not in self.arp:
                self.arp[a] = mac
            n = _ip(e.get("ndp"), 6)
            if n and n not in self.ndp:
                self.ndp[n] = mac
            d = _norm_mac(e.get("dhcp-proxy"))
            if d:
                self.dhcp[mac] = d


def _signature(st: os.stat_result) -> tuple:
    return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)


class FilesPlugin(LookupPlugin):
    NAME = "files"
    MODE = "dynamic"
    PROPS = (PropSpec("files/config", STRING, required=True, check=check_abs_path),)

    def __init__(self, vnetid: int, props: dict):
        super().__init__(vnetid, props)
        self.path = props["files/config"]
        self.table: Table | None = None
        self._stamp: tuple | None = None  # (mtime, size, inode) of the file the table came from
        self._failed: tuple | None = None  # (signature, reason) of the last file that failed

    def _stat(self) -> tuple:
        """(mtime, size, inode, ctime). The first three are the change stamp;
        ctime only keys the failure cache, so a chmod that makes an unreadable
        file readable is retried too."""
        try:
            if not isinstance(self.path, str):  # os.stat(3) would stat file descriptor 3
                raise ValueError
            st = os.stat(self.path)
        except (OSError, ValueError) as e:  # ValueError: a NUL or a lone surrogate in the path
            raise PluginError("%s: %s" % (self.path, getattr(e, "strerror", None) or "invalid path")) from None
        return _signature(st)

    def _read(self, sig: tuple) -> tuple[Table, tuple]:
        """Parse the file; on failure remember why for this signature, so that
        an unchanged broken file is not read again every 0.2 s."""
        if self._failed is not None and self._failed[0] == sig:
            raise PluginError(self._failed[1])  # a new exception: re-raising one would grow its traceback
        try:
            data, st = read_file(self.path, PluginError, limit=MAX_BYTES)
            sig = _signature(st)  # of what was read, should it have changed since the stat
            # Duplicate keys are allowed here, as illumos allows them (the last wins).
            table = Table(parse_json(data, self.path, PluginError, unique_keys=False), self.path)
        except PluginError as e:
            self._failed = (sig, str(e))
            raise
        self._failed = None
        return table, sig[:3]

    def start(self) -> None:
        self.table, self._stamp = self._read(self._stat())

    def check_reload(self) -> set[str] | None:
        sig = self._stat()
        if sig[:3] == self._stamp and self.table is not None:
            return None
        new, stamp = self._read(sig)  # raises: the old table stays
        old = self.table
        self.table, self._stamp = new, stamp
        if old is None:
            return set(new.dest)
        return {m for m in set(old.dest) | set(new.dest) if old.dest.get(m) != new.dest.get(m)}

    def lookup(self, mac: str):
        if self.table is None:
            return Drop("no table")
        return self.table.dest.get(mac, Drop("unknown MAC %s" % mac))

    def arp(self, ip: str) -> str | None:
        return self.table.arp.get(ip) if self.table else None

    def ndp(self, ip: str) -> str | None:
        return self.table.ndp.get(ip) if self.table else None

    def dhcp(self, mac: str) -> str | None:
        return self.table.dhcp.get(mac) if self.table else None

    def save(self) -> dict:
        return {"files/config": self.path}
