"""HyperLogLog in Redis's own representation (PFADD PFCOUNT PFMERGE)."""
