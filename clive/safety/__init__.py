"""What bounds and guards the programs clive starts: resource limits (cgroups, rlimits) and the watchdog,
the CPU cores a worker claims, the bubblewrap sandbox, ending a terminal's process session, and the
command guard.

Imports nothing of clive's but the standard library: every other part may use it."""
