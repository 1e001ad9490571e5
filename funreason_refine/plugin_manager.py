"""The one place plugins are loaded: built-ins first, then installed entry points, lazily, once.

Set ``FUNREASON_REFINE_NO_PLUGINS=1`` to load only the built-in plugins. Installed plugins are
never loaded under the project's own tests (``sys._called_from_test``, set by tests/conftest.py).
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass

import pluggy

from funreason_refine import hookspecs
from funreason_refine.errors import PluginError
from funreason_refine.stages.base import Stage

ENTRY_POINT_GROUP = "funreason_refine"
DEFAULT_PLUGINS = ("funreason_refine.stages.builtin",)

_pm: pluggy.PluginManager | None = None


def get_plugin_manager() -> pluggy.PluginManager:
    global _pm
    if _pm is None:
        pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        pm.add_hookspecs(hookspecs)
        for module_name in DEFAULT_PLUGINS:
            pm.register(importlib.import_module(module_name), name=module_name)
        if not os.environ.get("FUNREASON_REFINE_NO_PLUGINS") and not getattr(sys, "_called_from_test", False):
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        try:
            pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"a plugin implements a hook that does not exist: {exc}") from None
        _pm = pm
    return _pm


@dataclass(frozen=True)
class StageEntry:
    name: str
    cls: type[Stage]
    plugin: str


def stage_registry(pm: pluggy.PluginManager | None = None) -> dict[str, StageEntry]:
    """Every registered stage by name, with the plugin that registered it."""
    pm = pm or get_plugin_manager()
    registry: dict[str, StageEntry] = {}
    # Call each implementation separately so every stage is attributed to its plugin.
    for impl in pm.hook.register_stages.get_hookimpls():  # registration order: built-ins first
        def register(cls: type[Stage], _plugin: str = impl.plugin_name) -> None:
            if not (isinstance(cls, type) and issubclass(cls, Stage)):
                raise PluginError(f"plugin {_plugin} registered {cls!r}, which is not a Stage subclass")
            name = getattr(cls, "name", None)
            if not isinstance(name, str) or not name.isidentifier():
                raise PluginError(f"plugin {_plugin}: stage class {cls.__name__} needs a `name` that is an identifier")
            if name in registry:
                raise PluginError(f"stage {name!r} is registered twice: by {registry[name].plugin} "
                                  f"and by {_plugin}; rename one of them")
            registry[name] = StageEntry(name=name, cls=cls, plugin=_plugin)

        impl.function(register=register)
    return registry


def plugin_rows(pm: pluggy.PluginManager | None = None) -> list[dict[str, str]]:
    """name, version and hooks of every loaded plugin, for ``refine plugins``."""
    pm = pm or get_plugin_manager()
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    rows = []
    for name, plugin in pm.list_name_plugin():
        dist = dists.get(id(plugin))
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
        version = dist.version if dist is not None else _own_version()
        package = dist.project_name if dist is not None else "funreason-refine (built-in)"
        rows.append({"name": name, "package": package, "version": version, "hooks": ", ".join(hooks)})
    return rows


def _own_version() -> str:
    from funreason_refine import __version__

    return __version__
