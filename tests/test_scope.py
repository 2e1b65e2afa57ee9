"""The view a request runs is resolved to the code the engines measure."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from debug_toolbar_perf.scope import is_project_file, resolve_view_target
from tests.testapp import views


@pytest.fixture
def rf() -> RequestFactory:
    return RequestFactory()


def test_function_view(rf: RequestFactory) -> None:
    target = resolve_view_target(rf.get("/t/plain/"))
    assert target.kind == "function"
    assert target.codes == (views.plain.__code__,)
    assert target.label == "tests.testapp.views.plain"


def test_decorated_function_view_is_unwrapped(rf: RequestFactory) -> None:
    target = resolve_view_target(rf.get("/t/decorated/"))
    assert target.codes == (views.decorated.__wrapped__.__code__,)


@pytest.mark.parametrize("method", ["get", "post"])
def test_class_based_view_handler(rf: RequestFactory, method: str) -> None:
    target = resolve_view_target(getattr(rf, method)("/t/cbv/"))
    assert target.kind == "class-based"
    assert target.codes == (getattr(views.ClassBased, method).__code__,)
    assert target.label.endswith(f"ClassBased.{method}")


def test_class_based_view_unsupported_method(rf: RequestFactory) -> None:
    target = resolve_view_target(rf.delete("/t/cbv/"))
    assert target.label.endswith("http_method_not_allowed")


@pytest.mark.parametrize(("path", "action"), [("/t/things/", "list"), ("/t/things/7/", "retrieve")])
def test_viewset_action(rf: RequestFactory, path: str, action: str) -> None:
    target = resolve_view_target(rf.get(path))
    assert target.kind == "viewset"
    assert target.codes == (getattr(views.ThingViewSet, action).__code__,)


def test_demo_class_based_view(rf: RequestFactory) -> None:
    from shop.views import ReviewSummaryView

    target = resolve_view_target(rf.get("/reviews/summary/"))
    assert target.codes == (ReviewSummaryView.get.__code__,)


def test_unresolvable_url(rf: RequestFactory) -> None:
    target = resolve_view_target(rf.get("/no/such/page/"))
    assert target.kind == "unresolved"
    assert target.codes == ()


def test_project_files() -> None:
    import django

    from shop import views as shop_views

    assert is_project_file(shop_views.__file__)
    assert not is_project_file(django.__file__)
    assert not is_project_file("<string>")


def test_short_path_is_relative_to_the_library_or_project_folder() -> None:
    import posixpath

    import django.db.models.base

    from debug_toolbar_perf.scope import short_path
    from shop import views as shop_views

    assert short_path(django.db.models.base.__file__) == "django/db/models/base.py"
    assert short_path(shop_views.__file__) == "shop/views.py"  # the project (BASE_DIR)
    assert short_path(posixpath.__file__) == "posixpath.py"  # the standard library
    assert short_path("<frozen posixpath>") == "<frozen posixpath>"
    assert short_path("/nowhere/known/x.py") == "/nowhere/known/x.py"
