"""direct: point-to-point (illumos OVERLAY_TARGET_POINT). Every frame that
is not for a local port, broadcast and multicast included, goes to the one
destination; the data path never asks anyone."""

from pyovl.props import IP, UINT, PropSpec, check_dest_ip

NAME = "direct"
MODE = "point"
PROPS = (
    PropSpec("direct/dest_ip", IP, required=True, check=check_dest_ip),
    PropSpec("direct/dest_port", UINT, required=True, range=(1, 65535)),
)
