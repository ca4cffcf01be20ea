"""Durable state (SQL) and shared short-lived state (cache)."""
