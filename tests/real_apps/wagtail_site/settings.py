"""The test settings plus a small Wagtail site (Wagtail is in the ``test`` extra).

Its own settings module, used by a pytest run of its own (``test_wagtail.py`` starts it),
so the rest of the suite does not migrate Wagtail's apps on every run.
"""

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS, MIDDLEWARE

INSTALLED_APPS = [
    *INSTALLED_APPS,
    "wagtail.sites",
    "wagtail.users",
    "wagtail.documents",
    "wagtail.images",
    "wagtail.search",
    "wagtail.admin",
    "wagtail",
    "modelcluster",
    "taggit",
    "django_filters",
]
MIDDLEWARE = [
    *MIDDLEWARE[:1],
    "tests.real_apps.project.middleware.TimingHeaderMiddleware",
    *MIDDLEWARE[1:],
]
ROOT_URLCONF = "tests.real_apps.wagtail_site.urls"
WAGTAIL_SITE_NAME = "perf"
WAGTAILADMIN_BASE_URL = "http://testserver"
WAGTAILSEARCH_BACKENDS = {"default": {"BACKEND": "wagtail.search.backends.database"}}
