"""tobs-sync: keep an Obsidian vault in sync with Telegram."""

__version__ = "0.1.0"
