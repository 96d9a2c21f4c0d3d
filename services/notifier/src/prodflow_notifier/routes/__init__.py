"""HTTP routes of the notifier."""
