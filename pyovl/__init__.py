"""pyovl: illumos-style overlay networks (VXLAN) on Linux with an eBPF data path."""

__version__ = "0.1.0"
