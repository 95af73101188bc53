"""scripts/bench: pyovl against the kernel's vxlan device, same topology, same run."""
