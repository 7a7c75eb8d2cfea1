"""guardrl: train decision policies from logged data, prove on evidence whether they are safe to try.

``import guardrl`` registers ``SafeGrid-v0``, ``SafeNav-v0`` and ``Sepsis-v0`` with gymnasium, as ``import minigrid``
registers its ids. The registration waits until gymnasium itself is imported, so that ``guardrl --help`` does not
pay for it.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from types import ModuleType
from typing import Any

__version__ = "0.1.0"

SAFEGRID_ID = "SafeGrid-v0"
SAFENAV_ID = "SafeNav-v0"
SEPSIS_ID = "Sepsis-v0"
_REGISTRATION = "gymnasium.envs.registration"


def _register(registration: ModuleType) -> None:
    if SAFEGRID_ID not in registration.registry:
        registration.register(id=SAFEGRID_ID, entry_point="guardrl.envs.safegrid:SafeGrid", max_episode_steps=80)
    if SAFENAV_ID not in registration.registry:
        registration.register(id=SAFENAV_ID, entry_point="guardrl.envs.safenav:SafeNav", max_episode_steps=100)
    if SEPSIS_ID not in registration.registry:
        registration.register(id=SEPSIS_ID, entry_point="guardrl.envs.sepsis:Sepsis", max_episode_steps=20)


class _RegisterWhenGymnasiumLoads(importlib.abc.MetaPathFinder):
    """Finds gymnasium's registration module as usual and registers SafeGrid right after it executes."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != _REGISTRATION:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            execute(module)
            _register(module)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


if _REGISTRATION in sys.modules:
    _register(sys.modules[_REGISTRATION])
elif not any(isinstance(f, _RegisterWhenGymnasiumLoads) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterWhenGymnasiumLoads())
