"""direct: point-to-point (illumos OVERLAY_TARGET_POINT). Every frame that
is not for a local port, broadcast and multicast included, goes to the one
destination; the data path never asks the daemon."""

from pyovl.lookup.plugin import Destination, LookupPlugin
from pyovl.config.props import IP, UINT, PropSpec, check_dest_ip


class DirectPlugin(LookupPlugin):
    NAME = "direct"
    MODE = "point"
    PROPS = (
        PropSpec("direct/dest_ip", IP, required=True, check=check_dest_ip),
        PropSpec("direct/dest_port", UINT, required=True, range=(1, 65535)),
    )

    def default(self) -> Destination:
        return Destination(self.props["direct/dest_ip"], self.props["direct/dest_port"])

    def save(self) -> dict:
        return {k: self.props[k] for k in ("direct/dest_ip", "direct/dest_port")}
