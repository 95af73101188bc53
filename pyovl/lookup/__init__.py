"""Search plugins (illumos varpd's lookup side): their names, modes and
properties. The lookup daemon that runs them comes with the daemon issue."""
