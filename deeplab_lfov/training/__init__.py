"""Training: the compiled step, the loop and its callbacks, snapshots, optimisers."""
