"""The search-plugin interface, after illumos varpd's (libvarpd_provider.h).

Lifecycle: a plugin is created with its overlay's vnetid and properties
(validated against its PROPS already), then start(), then any number of
default() (POINT plugins) or lookup() / arp() / ndp() / dhcp() (DYNAMIC
ones), then stop(). Guarantees, as varpd gives them:
  - default, lookup, arp, ndp, dhcp, save and check_reload are only called
    between start and stop;
  - the daemon calls them from one lookup thread, so a plugin needs no
    locking of its own; they must not block for long (answer from memory);
  - a plugin never touches BPF maps or netlink: it answers, the daemon
    writes. A malformed entry is answered Drop, never an exception.
start() raises PluginError when the plugin cannot run (its message becomes
the overlay's degraded reason). check_reload() lets a plugin pick up a
changed source: it returns the MACs whose answer may have changed, or raises
PluginError (the old answers stay; the overlay is degraded until it heals).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyovl.errors import PyovlError


class PluginError(PyovlError):
    pass


@dataclass(frozen=True)
class Destination:
    ip: str
    port: int


@dataclass(frozen=True)
class Drop:
    reason: str


Answer = Destination | Drop


class LookupPlugin:
    NAME = ""
    MODE = "dynamic"  # or "point"
    PROPS: tuple = ()

    def __init__(self, vnetid: int, props: dict):
        self.vnetid = vnetid
        self.props = props

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    # POINT plugins
    def default(self) -> Answer:
        return Drop("no default destination")

    # DYNAMIC plugins
    def lookup(self, mac: str) -> Answer:
        return Drop("no lookups")

    def arp(self, ip: str) -> str | None:
        """The MAC answering for overlay IPv4 address ip, or None."""
        return None

    def ndp(self, ip: str) -> str | None:
        """The MAC answering for overlay IPv6 address ip, or None."""
        return None

    def dhcp(self, mac: str) -> str | None:
        """Where DHCP broadcasts from mac go (illumos dhcp-proxy), or None."""
        return None

    def check_reload(self) -> set[str] | None:
        return None

    def save(self) -> dict:
        return {}
