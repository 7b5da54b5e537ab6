from detector.track.stationary import StationaryTracker

__all__ = ["StationaryTracker"]
