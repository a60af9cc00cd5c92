"""Vote on resolutions by S/MIME-signed email."""

__version__ = "0.1.0"
