from ranvier.core.events.event import Event, JsonDict, StateKey

__all__ = ["Event", "JsonDict", "StateKey"]
