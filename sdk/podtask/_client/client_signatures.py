"""How `podtask.client` names, documents and signs what it builds from another function: the
client's methods (from the operations of `podtask._client.api_calls`: `blocking` and
`awaiting`) and the module's functions (from the client's methods)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

if TYPE_CHECKING:
    from podtask._client.api_calls import ApiCall

P = ParamSpec("P")
R = TypeVar("R")


def described_as(function: Any, like: Callable[..., Any], name: str, *, as_method: bool) -> Any:
    """`function` named, documented and signed as `like`: as a method of the client (a
    `self` before `like`'s parameters), or as the module's function of a method of it (the
    method's `self` left out). The return is the call's, so it is not shown."""
    parameters = list(inspect.signature(like).parameters.values())
    if as_method:
        parameters.insert(0, inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY))
    else:
        parameters = parameters[1:]
    function.__name__ = name
    function.__qualname__ = f"PodtaskClient.{name}" if as_method else name
    function.__doc__ = like.__doc__
    function.__signature__ = inspect.Signature(parameters)
    return function


def blocking(build: Callable[P, ApiCall[R]]) -> Callable[Concatenate[Any, P], R]:
    """The client's blocking method for the operation `build` makes the call of."""

    def method(client: Any, /, *args: P.args, **kwargs: P.kwargs) -> R:
        sent: R = client._transport.send(build(*args, **kwargs))
        return sent

    described: Callable[Concatenate[Any, P], R]
    described = described_as(method, build, build.__name__, as_method=True)
    return described


def awaiting(
    build: Callable[P, ApiCall[R]],
) -> Callable[Concatenate[Any, P], Coroutine[Any, Any, R]]:
    """The client's coroutine method (`…_async`) for the operation `build` makes the call of."""

    async def method(client: Any, /, *args: P.args, **kwargs: P.kwargs) -> R:
        sent: R = await client._loop_transport.send(build(*args, **kwargs))
        return sent

    described: Callable[Concatenate[Any, P], Coroutine[Any, Any, R]]
    described = described_as(method, build, build.__name__ + "_async", as_method=True)
    return described
