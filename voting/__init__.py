"""Vote on resolutions by S/MIME-signed email."""

__version__ = "0.1.0"

NO_PYDANTIC_PLUGINS = {"PYDANTIC_DISABLE_PLUGINS": "__all__"}
"""The environment every process of the service runs under. The configuration holds the deployment's passwords
and a reading process the secretariat's key: a pydantic plugin installed beside the service would be handed every
value validated. None is run, nor looked for (about 5 ms at start)."""
