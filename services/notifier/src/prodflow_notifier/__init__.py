"""prodflow notifier: webhooks (Standard Webhooks) fed from the event stream."""
