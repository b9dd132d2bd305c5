"""The driver of a batch: feeds the graph in windows and records every result.

It runs in a thread of the submitting process, or in a worker for a detached batch.
"""
