"""Cornjacket services: the shared core, infrastructure adapters and one package per service."""
