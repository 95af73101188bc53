"""The BPF side of pyovl: ABI mirror, syscalls, maps, loader and test runs."""
