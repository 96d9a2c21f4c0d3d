"""Fixtures of the gateway tests (defined in gateway_stack.py)."""

from gateway_stack import stack

__all__ = ["stack"]
