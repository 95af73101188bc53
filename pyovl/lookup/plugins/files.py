"""files: dynamic lookups from the illumos overlay_files JSON (proxy ARP,
NDP, DHCP). Its property names the file; the lookups run in the daemon."""

from pyovl.props import STRING, PropSpec, check_abs_path

NAME = "files"
MODE = "dynamic"
PROPS = (PropSpec("files/config", STRING, required=True, check=check_abs_path),)
