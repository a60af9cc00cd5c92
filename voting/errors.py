"""Exceptions raised by the voting package.

Every exception the package raises on purpose derives from `VotingError`, so
that the command line can turn it into one clean line and an exit status.
"""


class VotingError(Exception):
    """Root of every error this package raises on purpose."""

    exit_status = 1


class ConfigError(VotingError):
    """The configuration or the electorate file is missing or invalid; names the key and the file."""

    exit_status = 2


class UsageError(VotingError):
    """A command was called with arguments that cannot work (unknown vote, bad date, ...)."""

    exit_status = 2


class KeyMaterialError(VotingError):
    """A key or certificate could not be created, read or decrypted."""

    exit_status = 2


class LedgerError(VotingError):
    """The ledger refused an operation (wrong state of a vote, inconsistent data)."""


class MailError(VotingError):
    """A mail server could not be reached or refused the connection."""


class UnverifiedError(VotingError):
    """A message that must come signed from a known party (a ballot from the secretariat) does not verify."""


class StorageError(VotingError):
    """The disk refused a write (full, or failing): nothing of it was committed, and it can be tried again."""
