from detector.zones.zone import Zone

__all__ = ["Zone"]
