"""docker-compose.yml can't run here (no Docker engine), so check what can be checked: it is
valid YAML, every service runs a real module, and it sets only settings the code reads."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import yaml

from console.settings import ConsoleSettings
from services import declarations
from services.common.settings import CommonSettings

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_compose_runs_the_five_services_from_real_modules() -> None:
    services = _compose()["services"]
    modules = {
        name: spec["command"][-1]
        for name, spec in services.items()
        if spec.get("command", [""])[0] == "python"
    }
    assert modules == {**{d.name: d.package for d in declarations()}, "console": "console"}
    for module in modules.values():
        assert importlib.util.find_spec(f"{module}.__main__") is not None, module


def test_compose_sets_only_settings_the_code_reads() -> None:
    classes: list[type[CommonSettings]] = [d.settings for d in declarations()]
    classes.append(ConsoleSettings)
    known = {
        f"LEADTRAIL_{name.upper()}"
        for settings_class in classes
        for name in settings_class.model_fields
    } | {f"LEADTRAIL_{d.name.upper().replace('-', '_')}_URL" for d in declarations()}
    for name, spec in _compose()["services"].items():
        for variable in spec.get("environment", {}):
            if variable.startswith("LEADTRAIL_"):
                assert variable in known, f"{name} sets unknown {variable}"


def test_compose_gives_every_service_its_required_settings() -> None:
    environment = _compose()["x-leadtrail-env"]
    for declaration in declarations():
        settings_class = declaration.settings
        required = {
            f"LEADTRAIL_{name.upper()}"
            for name, field in settings_class.model_fields.items()
            if field.is_required()
        }
        assert required <= set(environment), (
            f"{declaration.name} needs {required - set(environment)}"
        )
