from debug_toolbar.toolbar import debug_toolbar_urls
from django.urls import path

from shop import views

urlpatterns = [
    path("", views.home, name="home"),
    path("cpu/", views.cpu, name="cpu"),
    path("memory/", views.memory, name="memory"),
    path("hot-loop/", views.hot_loop, name="hot_loop"),
    path("products/", views.products, name="products"),
    path("api/orders/", views.api_orders, name="api_orders"),
    path("products/n-plus-one/", views.n_plus_one, name="n_plus_one"),
    path("products/fixed/", views.fixed, name="fixed"),
    path("reviews/summary/", views.ReviewSummaryView.as_view(), name="truthy"),
    path("reviews/summary/fixed/", views.ReviewSummaryFixedView.as_view(), name="truthy_fixed"),
    path("products/catalogue/", views.CatalogueView.as_view(), name="catalogue"),
    path("products/published/", views.unindexed, name="unindexed"),
    path("products/popular/", views.sorted_products, name="sorted"),
    path("categories/", views.categories, name="categories"),
    path("xss/", views.xss, name="xss"),
    path("async/cpu/", views.async_cpu, name="async_cpu"),
    path("async/orm/", views.async_orm, name="async_orm"),
    path("async/alloc/", views.async_alloc, name="async_alloc"),
    *debug_toolbar_urls(),
]
