"""Exceptions and warnings of the energy measurement."""


class EnergyError(RuntimeError):
    """A measurement that cannot be trusted: raised instead of returning a silent zero."""


class EnergyWarning(UserWarning):
    """Something in the measurement deserves attention but the numbers are still usable."""
