"""The one place plugins are loaded: built-ins first, then installed entry points, lazily, once.

Set ``FUNREASON_REFINE_NO_PLUGINS=1`` to load only the built-in plugins, and
``FUNREASON_REFINE_TRACE=1`` to print every hook call and its result to stderr. Installed plugins
are never loaded under the project's own tests (``sys._called_from_test``, set by tests/conftest.py).
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
            try:
                pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
            except Exception as exc:  # an installed package's plugin module does not import
                raise PluginError(
                    f"an installed plugin failed to load: {type(exc).__name__}: {exc}. Fix or uninstall "
                    "it (`refine plugins` lists them), or set FUNREASON_REFINE_NO_PLUGINS=1 to run "
                    "without installed plugins"
                ) from exc
        try:
            pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"a plugin implements a hook that does not exist: {exc}") from None
        if os.environ.get("FUNREASON_REFINE_TRACE"):
            pm.trace.root.setwriter(sys.stderr.write)
            pm.enable_tracing()
        _pm = pm
    return _pm


@dataclass(frozen=True)
class StageEntry:
    name: str
    cls: type[Stage]
    plugin: str
    replaced: str | None = None  # the plugin whose stage of the same name this one replaced


def stage_registry(pm: pluggy.PluginManager | None = None) -> dict[str, StageEntry]:
    """Every registered stage by name, with the plugin that registered it."""
    pm = pm or get_plugin_manager()
    registry: dict[str, StageEntry] = {}
    # Each plugin is called on its own (through pluggy, so tracing sees it) to attribute its stages.
    for impl in pm.hook.register_stages.get_hookimpls():  # registration order: built-ins first
        others = [p for p in pm.get_plugins() if p is not impl.plugin]

        def register(cls: type[Stage], replace: bool = False, _plugin: str = impl.plugin_name) -> None:
            if not (isinstance(cls, type) and issubclass(cls, Stage)):
                raise PluginError(f"plugin {_plugin} registered {cls!r}, which is not a Stage subclass")
            name = getattr(cls, "name", None)
            if not isinstance(name, str) or not name.isidentifier():
                raise PluginError(f"plugin {_plugin}: stage class {cls.__name__} needs a `name` that is an identifier")
            previous = registry.get(name)
            if previous is not None and not replace:
                raise PluginError(
                    f"stage {name!r} is registered twice: by {previous.plugin} and by {_plugin}; "
                    f"rename one, or register(..., replace=True) to replace it on purpose"
                )
            if previous is not None and previous.replaced is not None:
                raise PluginError(f"stage {name!r} is replaced twice: by {previous.plugin} and by {_plugin}")
            registry[name] = StageEntry(
                name=name, cls=cls, plugin=_plugin, replaced=previous.plugin if previous is not None else None
            )

        pm.subset_hook_caller("register_stages", remove_plugins=others)(register=register)
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
