"""Puts the checked settings (web/config.py) on app.config."""
from __future__ import annotations

from flask import Flask

from . import config as cfg


def apply(app: Flask, overrides: dict | None) -> None:
    settings = cfg.load(app.instance_path, overrides)
    app.config.update(settings)
    app.config["MAX_CONTENT_LENGTH"] = int(settings["MAX_CONTENT_LENGTH"])
    app.json.sort_keys = False
