"""User-facing errors: one sentence that names the problem and the fix."""


class SemphaseError(Exception):
    """An error caused by the user's input or environment, explained in one sentence.

    The CLI prints it without a traceback and exits with status 2; the pytest plugin turns
    it into a usage error or a skip with the same sentence.
    """


class ModelUnavailable(SemphaseError):
    """The model exists but cannot be had here (hub unreachable and not cached)."""


class DeviceUnavailable(SemphaseError):
    """The requested device does not exist on this machine."""


class DataUnavailable(SemphaseError):
    """The evaluation data cannot be found or read."""


class NonFiniteLoss(SemphaseError):
    """A forward pass produced a NaN or infinite loss."""


class NoMeasurableWords(SemphaseError):
    """No word of a stimuli file can be measured on the model: the semantic experiments (and those
    that read their evidence as part of their own measurement) stop with one sentence; pytest skips
    their claim tests with it."""
