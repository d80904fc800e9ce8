"""Neutral modules shared by the supervisor and its children.

Nothing here imports grpc or the supervisor's loop: both sides of a fork may import it.
"""
