"""hyperq."""
