"""URLs of the real-app tests: the Django admin and the library's generic views."""

from debug_toolbar.toolbar import debug_toolbar_urls
from django.contrib import admin
from django.urls import path

from tests.real_apps.library import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("books/", views.BookList.as_view()),
    path("books/fn/", views.book_list),
    path("route/<str:kind>/", views.router),
    *debug_toolbar_urls(),
]
