"""Errors a user can cause in the engine, each with a message a person can act on."""


class EngineError(Exception):
    """Base class: the message is shown to the user as it is."""


class ModelLoadError(EngineError):
    """The model could not be loaded: missing or corrupt file, unsupported architecture, no weights."""


class DeviceUnavailable(EngineError):
    """The requested device (for example CUDA) is not present on this machine."""


class PrecisionUnsupported(EngineError):
    """The requested precision cannot run on the chosen device."""


class NoModelLoaded(EngineError):
    """A request was submitted while no model is loaded."""


class EngineBusy(EngineError):
    """The engine cannot take this now (a load is already running, or the queue is full)."""


class InvalidRequest(EngineError):
    """The request itself is wrong: empty message, sampling parameters out of range."""


class PromptTooLong(InvalidRequest):
    """The prompt does not fit in the model's context window."""


class SamplingFailed(EngineError):
    """The next token of one request could not be sampled (the model's scores were unusable)."""
