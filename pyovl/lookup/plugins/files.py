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
"""

from __future__ import annotations

import ipaddress
import json
import os

from pyovl.bpf.abi import mac_bytes, mac_str
from pyovl.lookup.plugin import Destination, Drop, LookupPlugin, PluginError
from pyovl.props import STRING, PropSpec, check_abs_path


def _norm_mac(text: object) -> str | None:
    try:
        raw = mac_bytes(text) if isinstance(text, str) else None
    except ValueError:
        return None
    return mac_str(raw) if raw else None


def _ip(text: object, version: int | None = None) -> str | None:
    try:
        ip = ipaddress.ip_address(text) if isinstance(text, str) else None
    except ValueError:
        return None
    if ip is None or (version and ip.version != version):
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
        for key, e in doc.items():
            mac = _norm_mac(key)
            if mac is None:
                raise PluginError("%s: %r is not a MAC address" % (path, key))
            if not isinstance(e, dict):
                raise PluginError("%s: the entry of %s must be an object" % (path, key))
            ip, port = _ip(e.get("ip")), e.get("port")
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


class FilesPlugin(LookupPlugin):
    NAME = "files"
    MODE = "dynamic"
    PROPS = (PropSpec("files/config", STRING, required=True, check=check_abs_path),)

    def __init__(self, vnetid: int, props: dict):
        super().__init__(vnetid, props)
        self.path = props["files/config"]
        self.table: Table | None = None
        self._stamp: tuple | None = None

    def _read(self) -> tuple[Table, tuple]:
        try:
            st = os.stat(self.path)
            with open(self.path) as f:
                text = f.read()
        except OSError as e:
            raise PluginError("%s: %s" % (self.path, e.strerror)) from None
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise PluginError("%s: invalid JSON at line %d column %d: %s"
                              % (self.path, e.lineno, e.colno, e.msg)) from None
        return Table(doc, self.path), (st.st_mtime_ns, st.st_size, st.st_ino)

    def start(self) -> None:
        self.table, self._stamp = self._read()

    def check_reload(self) -> set[str] | None:
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError as e:
            raise PluginError("%s: %s" % (self.path, e.strerror)) from None
        if stamp == self._stamp and self.table is not None:
            return None
        new, stamp = self._read()  # raises: the old table stays
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
