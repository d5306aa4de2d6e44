"""Scene I/O for AI4Arctic ready-to-train files and the synthetic scene generator."""
