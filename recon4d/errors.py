"""Exceptions shown to users as one clear message (the CLI prints them without a traceback)."""


class Recon4dError(Exception):
    """Base class: an error whose message is meant for the user."""


class InputError(Recon4dError):
    """An input file or folder is missing, unreadable, empty or of the wrong kind."""


class CheckpointError(Recon4dError):
    """A checkpoint cannot be loaded safely or does not match the architecture."""


class OptionError(Recon4dError):
    """An option value, or a combination of options, is invalid."""


class OutputError(Recon4dError):
    """An output file or folder cannot be written (read-only parent, a file in the way, ...)."""
