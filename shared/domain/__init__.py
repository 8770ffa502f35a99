"""The pure domain core: Housing First rules with no I/O."""
