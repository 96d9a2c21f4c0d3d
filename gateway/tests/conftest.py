"""Fixtures of the gateway tests (defined in gateway_stack.py)."""

from gateway_stack import counted_stack, lifecycle_stack, stack, strict_stack

__all__ = ["counted_stack", "lifecycle_stack", "stack", "strict_stack"]
