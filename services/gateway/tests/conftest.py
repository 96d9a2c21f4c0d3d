"""Fixtures of the gateway tests (defined in gateway_stack.py)."""

from gateway_stack import cors_stack, counted_stack, lifecycle_stack, stack, strict_stack

__all__ = ["cors_stack", "counted_stack", "lifecycle_stack", "stack", "strict_stack"]
