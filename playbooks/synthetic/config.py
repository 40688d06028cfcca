# The knobs of the synthetic playbook: like a kernel's, they pay off only in the right combinations.
TILE = 1
UNROLL = 1
VECTOR = 1
PREFETCH = 0
