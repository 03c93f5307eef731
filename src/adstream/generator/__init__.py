"""Realistic, deterministic mock ad traffic (SPEC section 8)."""
