"""Client-side helpers for Cornjacket users (standard library only)."""
