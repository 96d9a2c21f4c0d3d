"""Fixtures of the gateway tests (defined in gateway_stack.py)."""

from gateway_stack import counted_stack, stack

__all__ = ["counted_stack", "stack"]
