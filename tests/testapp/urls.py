from django.urls import path

from tests.testapp import views

thing_list = views.ThingViewSet.as_view({"get": "list"})
thing_detail = views.ThingViewSet.as_view({"get": "retrieve"})

urlpatterns = [
    path("plain/", views.plain, name="t_plain"),
    path("async-plain/", views.async_plain, name="t_async_plain"),
    path("decorated/", views.decorated, name="t_decorated"),
    path("cbv/", views.ClassBased.as_view(), name="t_cbv"),
    path("things/", thing_list, name="t_things"),
    path("things/<str:pk>/", thing_detail, name="t_thing"),
    path("raises/", views.raises, name="t_raises"),
    path("streaming/", views.streaming, name="t_streaming"),
    path("json/", views.json_view, name="t_json"),
]
