"""The one place plugins are loaded: built-ins first, then installed entry points, lazily, once.

Set ``FUNREASON_REFINE_NO_PLUGINS=1`` to load only the built-in plugins, and
``FUNREASON_REFINE_TRACE=1`` to print every hook call and its result to stderr. Installed plugins
are never loaded under the project's own tests (``sys._called_from_test``, set by tests/conftest.py).
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pluggy

from funreason_refine import hookspecs
from funreason_refine.errors import PluginError
from funreason_refine.stages.base import Stage, StageConfig

ENTRY_POINT_GROUP = "funreason_refine"
DEFAULT_PLUGINS = ("funreason_refine.stages.builtin",)

_pm: pluggy.PluginManager | None = None
_at_start: set[str] = set()  # the plugins loaded when the manager was made
_installed: dict[str, metadata.Distribution] = {}  # installed plugins by name: the package each came from


def get_plugin_manager() -> pluggy.PluginManager:
    global _pm
    if _pm is None:
        pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        pm.add_hookspecs(hookspecs)
        for module_name in DEFAULT_PLUGINS:
            pm.register(importlib.import_module(module_name), name=module_name)
        if not os.environ.get("FUNREASON_REFINE_NO_PLUGINS") and not getattr(sys, "_called_from_test", False):
            _load_installed(pm)
        try:
            pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(_unknown_hook(pm, exc)) from None
        _at_start.update(name for name, _ in pm.list_name_plugin())
        if os.environ.get("FUNREASON_REFINE_TRACE"):
            pm.trace.root.setwriter(sys.stderr.write)
            pm.enable_tracing()
        _pm = pm
    return _pm


def _load_installed(pm: pluggy.PluginManager) -> None:
    """Each installed package's entry point, loaded on its own (pluggy's load_setuptools_entrypoints loads
    them all in one call), so that one that fails is named with its package."""
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if pm.is_blocked(entry_point.name):
            continue
        if pm.get_plugin(entry_point.name) is not None:
            _same_package_again(entry_point)  # a package found twice on the path is loaded once
            continue
        try:
            pm.register(entry_point.load(), name=entry_point.name)
        except Exception as exc:  # its module does not import, or implements a hook wrongly
            raise PluginError(_load_failure(entry_point, exc)) from exc
        if entry_point.dist is not None:
            _installed[entry_point.name] = entry_point.dist


def _same_package_again(entry_point: metadata.EntryPoint) -> None:
    """PluginError when a second package names its entry point as a loaded plugin is named: pluggy would
    keep one of the two, the other's stages never registered, whichever the install order put first."""
    first = _installed.get(entry_point.name)
    package = entry_point.dist.name if entry_point.dist is not None else None
    if first is not None and package is not None and first.name == package:
        return
    holder = f"package {first.name}" if first is not None else "this package itself"
    raise PluginError(
        f"two plugins are named {entry_point.name!r}: the entry point `{entry_point.name} = {entry_point.value}` of "
        f"package {package or 'unknown'} and that of {holder} (group {ENTRY_POINT_GROUP}); only one could load. "
        "Give one of them another entry point name (its setup.cfg or pyproject.toml) and reinstall it"
    )


def _unknown_hook(pm: pluggy.PluginManager, exc: pluggy.PluginValidationError) -> str:
    name = pm.get_name(exc.plugin) or repr(exc.plugin)
    dist = _installed.get(name)
    package = f" (package {dist.name})" if dist is not None else ""
    uninstall = f"`pip uninstall {dist.name}`" if dist is not None else "uninstall it"
    return (
        f"plugin {name}{package} implements a hook that does not exist: {exc}. The hooks are listed in "
        f"docs/plugins.md (a misspelt name, such as register_stage for register_stages?). Fix the plugin, {uninstall}, "
        "or set FUNREASON_REFINE_NO_PLUGINS=1 to run without installed plugins"
    )


def _load_failure(entry_point: metadata.EntryPoint, exc: Exception) -> str:
    package = entry_point.dist.name if entry_point.dist is not None else None
    uninstall = f"uninstall it (`pip uninstall {package}`)" if package else "uninstall its package"
    return (
        f"the installed plugin {entry_point.name!r} failed to load: {type(exc).__name__}: {exc} (entry point "
        f"`{entry_point.name} = {entry_point.value}` of package {package or 'unknown'}, group {ENTRY_POINT_GROUP}). "
        f"Fix or reinstall that package, {uninstall}, or set FUNREASON_REFINE_NO_PLUGINS=1 to run without "
        "installed plugins"
    )


def _who(plugin: str) -> str:
    """A plugin by name, with its package when it is installed."""
    dist = _installed.get(plugin)
    return f"plugin {plugin} (package {dist.name})" if dist is not None else f"plugin {plugin}"


@dataclass(frozen=True)
class RegisteredStage:
    """A stage class and the plugin that registered it."""

    cls: type[Stage]
    plugin: str
    replaced: str | None = None  # the plugin whose stage of the same name this one replaced

    @property
    def name(self) -> str:
        return self.cls.name


class StageRegistry:
    """Every registered stage by name. ``register`` is what the ``register_stages`` hook hands plugins,
    and what a pipeline's judge-only stages (stage specs) are registered with."""

    def __init__(self) -> None:
        self._stages: dict[str, RegisteredStage] = {}

    def register(self, cls: type[Stage], replace: bool = False, *, plugin: str) -> None:
        if not (isinstance(cls, type) and issubclass(cls, Stage)):
            raise PluginError(f"plugin {plugin} registered {cls!r}, which is not a Stage subclass")
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name.isidentifier():
            raise PluginError(f"plugin {plugin}: stage class {cls.__name__} needs a `name` that is an identifier")
        config = cls.Config
        if not (isinstance(config, type) and issubclass(config, StageConfig)):
            raise PluginError(
                f"plugin {plugin}: stage {name!r} ({cls.__name__}) has a Config that is not a StageConfig subclass; "
                "write `class Config(StageConfig):` (from funreason_refine import StageConfig), so that unknown "
                "keys in its [[stages]] table are errors"
            )
        if config.model_config.get("extra") != "forbid":
            raise PluginError(
                f"plugin {plugin}: stage {name!r} ({cls.__name__}) has a Config with extra="
                f"{config.model_config.get('extra')!r}; remove it, so that unknown keys in its [[stages]] table "
                "are errors"
            )
        previous = self._stages.get(name)
        if previous is not None and not replace:
            raise PluginError(
                f"stage {name!r} is registered twice: by {previous.plugin} and by {plugin}; "
                "rename one, or register(..., replace=True) to replace it on purpose"
            )
        if previous is not None and previous.replaced is not None:
            raise PluginError(f"stage {name!r} is replaced twice: by {previous.plugin} and by {plugin}")
        self._stages[name] = RegisteredStage(cls, plugin, previous.plugin if previous is not None else None)

    def get(self, name: str) -> RegisteredStage | None:
        return self._stages.get(name)

    def __getitem__(self, name: str) -> RegisteredStage:
        return self._stages[name]

    def __contains__(self, name: object) -> bool:
        return name in self._stages

    def __iter__(self) -> Iterator[str]:
        return iter(self._stages)

    def names(self) -> list[str]:
        return list(self._stages)

    def stages(self) -> list[RegisteredStage]:
        return list(self._stages.values())

    def default_pipeline(self) -> list[str]:
        """The stages a pipeline without ``[[stages]]`` runs: those with an ``order``, in that order."""
        ordered = [s for s in self._stages.values() if s.cls.order is not None]
        return [s.name for s in sorted(ordered, key=lambda s: (s.cls.order, s.name))]

    def copy(self) -> StageRegistry:
        other = StageRegistry()
        other._stages = dict(self._stages)
        return other


def stage_registry(pm: pluggy.PluginManager | None = None) -> StageRegistry:
    """Every registered stage by name, with the plugin that registered it."""
    pm = pm or get_plugin_manager()
    registry = StageRegistry()
    # Each plugin is called on its own (through pluggy, so tracing sees it) to attribute its stages.
    for impl in pm.hook.register_stages.get_hookimpls():  # registration order: built-ins first
        others = [p for p in pm.get_plugins() if p is not impl.plugin]
        register = functools.partial(registry.register, plugin=impl.plugin_name)
        try:
            pm.subset_hook_caller("register_stages", remove_plugins=others)(register=register)
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(
                f"the register_stages hook of {_who(impl.plugin_name)} raised {type(exc).__name__}: {exc}. Fix or "
                "uninstall the plugin, or set FUNREASON_REFINE_NO_PLUGINS=1 to run without installed plugins"
            ) from exc
    return registry


def loaded_at_start(plugin: str) -> bool:
    """Whether a new process loads ``plugin`` by itself (built in, or installed through an entry
    point), as worker processes do; a plugin registered in code at run time is not."""
    get_plugin_manager()
    return plugin in _at_start


def stage_rows(registry: StageRegistry | None = None) -> list[dict[str, Any]]:
    """Every registered stage with its plugin, defaults and own keys, for ``refine stages``."""
    rows = []
    for registered in (registry or stage_registry()).stages():
        cls = registered.cls
        keys = {
            name: {"default": field.get_default(call_default_factory=True), "description": field.description or ""}
            for name, field in cls.Config.model_fields.items()
        }
        rows.append(
            {
                "name": cls.name,
                "plugin": registered.plugin,
                "description": cls.summary(),
                "order": cls.order,
                "on_fail": cls.on_fail,
                "max_attempts": cls.max_attempts,
                "keys": keys,
            }
        )
    return rows


def plugin_rows(pm: pluggy.PluginManager | None = None) -> list[dict[str, Any]]:
    """name, package, version and hooks of every loaded plugin, for ``refine plugins``."""
    pm = pm or get_plugin_manager()
    rows: list[dict[str, Any]] = []
    for name, plugin in pm.list_name_plugin():
        dist = _installed.get(name)
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
        rows.append({"name": name, **_origin(name, plugin, dist), "hooks": hooks})
    return rows


def _origin(name: str, plugin: object, dist: metadata.Distribution | None) -> dict[str, str]:
    """The package and version a plugin came from: installed, built in, or registered in code at run time
    (``pm.register``: no package, and worker processes do not load it)."""
    if dist is not None:
        return {"package": dist.name, "version": dist.version}
    if name in DEFAULT_PLUGINS:
        return {"package": "funreason-refine (built-in)", "version": _own_version()}
    module = getattr(plugin, "__module__", None) or getattr(plugin, "__name__", "?")
    return {"package": f"none: registered in code (module {module})", "version": "-"}


def _own_version() -> str:
    from funreason_refine import __version__

    return __version__


def call_hook(hook: Any, **kwargs: Any) -> None:
    """Call a lifecycle hook; a plugin that raises stops the run with a message naming it."""
    from funreason_refine.errors import PluginError

    try:
        hook(**kwargs)
    except Exception as exc:
        plugins = _raised_in(hook, exc) or ", ".join(impl.plugin_name for impl in hook.get_hookimpls())
        raise PluginError(
            f"the {hook.name} hook of plugin(s) {plugins} raised {type(exc).__name__}: {exc}. "
            "Everything finished so far is saved; fix or remove the plugin and run again"
        ) from exc


def _raised_in(hook: Any, exc: Exception) -> str | None:
    """The plugin whose implementation of ``hook`` the exception came from: the first of its frames that is
    one, or None (an implementation that is no Python function)."""
    codes = {getattr(impl.function, "__code__", None): impl.plugin_name for impl in hook.get_hookimpls()}
    frame = exc.__traceback__
    while frame is not None:
        if frame.tb_frame.f_code in codes:
            return codes[frame.tb_frame.f_code]
        frame = frame.tb_next
    return None
