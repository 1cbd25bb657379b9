"""Inference backends and the streaming engine."""
