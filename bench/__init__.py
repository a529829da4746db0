"""`make bench`: the app measured against its baselines on the local host and sandbox.

Run as `python -m bench` from the repository root; see `bench/__main__.py`.
"""
