"""TLS for the service's own connections: certificates always verified, a private CA trusted besides the system's."""

from __future__ import annotations

import ssl

from voting.errors import MailError


def client_context(ca_file: str, setting: str, error: type[MailError] = MailError) -> ssl.SSLContext:
    """Verification on, the system's CAs trusted, and `ca_file` (an extra, private CA) in addition to them.

    `setting` names the configuration key in error messages.
    """
    context = ssl.create_default_context()
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except OSError as problem:
            raise error(f"cannot load {setting} {ca_file}: {problem.strerror or problem}") from None
        except ssl.SSLError as problem:
            raise error(f"{setting} {ca_file} holds no usable certificate: {problem}") from None
    return context
