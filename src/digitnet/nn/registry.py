"""One registry mechanism for every kind of component: layers, losses, optimisers,
schedules and initialisers.

A component is registered under a name (and optional aliases); a saved model, a recipe or
a command-line flag then names it, and :meth:`Registry.create` builds it from a name or a
config dict such as ``{"name": "mse", "reduction": "sum"}``. The registry also says which
options a component takes (its constructor's keyword parameters), so a run spec can refuse
an option that does not apply before anything is built.

Components outside the engine (the seed experiments' quirks) register in the same
registries; :meth:`Registry.module_of` names the module that defines each one, so a model
file can say where to find it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownComponentError(ValueError):
    """A name that no component of this kind is registered under."""


class Registry(Generic[T]):
    """Named classes of one kind of component.

    ``key`` is the config entry that holds the name: ``"type"`` for layers (as in
    ``{"type": "Linear", ...}``), ``"name"`` for everything else.
    """

    def __init__(self, kind: str, *, key: str = "name") -> None:
        self.kind, self.key = kind, key
        self._classes: dict[str, type[T]] = {}
        self._aliases: dict[str, str] = {}

    # -- registering --------------------------------------------------------------------------
    def register(self, name: str | None = None, *, aliases: Iterable[str] = ()
                 ) -> Callable[[type[T]], type[T]]:
        """Class decorator: register under ``name`` (default: the class's ``name``
        attribute, else its class name) and ``aliases``; sets ``cls.name`` to the name."""

        def add(cls: type[T]) -> type[T]:
            key = name or cls.__dict__.get("name") or cls.__name__
            for label in (key, *aliases):
                owner = self._classes.get(self._aliases.get(label, label))
                if owner is not None and owner is not cls:
                    raise ValueError(f"{self.kind} name {label!r} is already taken by {owner.__name__}")
            self._classes[key] = cls
            self._aliases.update({alias: key for alias in aliases})
            cls.name = key  # type: ignore[attr-defined]
            return cls

        return add

    # -- looking up ----------------------------------------------------------------------------
    def canonical(self, name: str) -> str:
        """The registered name for ``name`` or one of its aliases."""
        if not isinstance(name, str):
            raise UnknownComponentError(f"a {self.kind} is named by a string, got {name!r}")
        key = self._aliases.get(name, name)
        if key not in self._classes:
            choices = ", ".join(self.names())
            raise UnknownComponentError(f"unknown {self.kind} {name!r}; choose one of {choices}")
        return key

    def get(self, name: str) -> type[T]:
        """The class registered under ``name`` (or an alias)."""
        return self._classes[self.canonical(name)]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._aliases.get(name, name) in self._classes

    def names(self, *, aliases: bool = False, where: Callable[[type[T]], bool] | None = None) -> list[str]:
        """Registered names, sorted (with ``aliases``, those too); ``where`` filters by class."""
        keys = [k for k, cls in self._classes.items() if where is None or where(cls)]
        if aliases:
            keys += [a for a, k in self._aliases.items() if k in keys]
        return sorted(keys)

    def module_of(self, name: str) -> str:
        """The module that defines the component (for model files: where to find it)."""
        return self.get(name).__module__

    def options(self, name: str) -> list[str]:
        """The keyword options the component's constructor takes, in order."""
        params = inspect.signature(self.get(name)).parameters.values()
        return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]

    # -- building ------------------------------------------------------------------------------
    def create(self, spec: str | dict[str, Any] | T, **context: Any) -> T:
        """A component from a name, a config dict (``{key: name, **options}``) or an
        existing instance (returned as it is).

        ``context`` holds what the builder supplies rather than the config (a random
        generator, a dtype, the batch size); each entry is passed only to components whose
        constructor takes it.
        """
        if isinstance(spec, str):
            spec = {self.key: spec}
        if not isinstance(spec, dict):
            if isinstance(spec, tuple(self._classes.values())):
                return spec  # type: ignore[return-value]
            raise UnknownComponentError(f"cannot make a {self.kind} from {spec!r}")
        options = dict(spec)
        name = options.pop(self.key, None)
        if name is None:
            raise UnknownComponentError(f"a {self.kind} config needs a {self.key!r} entry, got {spec!r}")
        key = self.canonical(name)
        accepted = self.options(key)
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise UnknownComponentError(
                f"{self.kind} {key!r} takes no option {', '.join(map(repr, unknown))}"
                + (f" (its options: {', '.join(accepted)})" if accepted else " (it takes no options)"))
        extra = {k: v for k, v in context.items() if k in accepted and k not in options}
        missing = [p.name for p in inspect.signature(self._classes[key]).parameters.values()
                   if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                   and p.name not in options and p.name not in extra]
        if missing:
            raise UnknownComponentError(f"{self.kind} {key!r} needs {', '.join(map(repr, missing))}")
        return self._classes[key](**options, **extra)
