from detector.rules.debounce import Candidate, Debouncer, State, Transition
from detector.rules.engine import ViolationEngine, ZoneEvent
from detector.rules.roles import RoleMap

__all__ = ["Candidate", "Debouncer", "RoleMap", "State", "Transition", "ViolationEngine", "ZoneEvent"]
