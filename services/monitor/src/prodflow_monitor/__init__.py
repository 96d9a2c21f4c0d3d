"""prodflow monitor: Follows job documents, drives job state, registers outputs, serves status and the grabber."""
