"""Zones: pure box geometry (geometry.py) and a camera's zone polygons on frames (zone.py)."""
