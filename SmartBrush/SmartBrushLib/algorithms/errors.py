"""Exceptions raised by the Smart Brush algorithms."""


class SmartBrushInputError(ValueError):
    """An argument has the wrong shape, dimension, label or range; the message says what to change."""


class SmartBrushCancelled(RuntimeError):
    """A long prediction was stopped because its `cancel` callable returned True."""
