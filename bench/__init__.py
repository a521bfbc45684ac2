"""Side-by-side benchmarks of Ranvier and Synapse (see bench/README.md)."""
