from django.urls import include, path

from demo_site.urls import urlpatterns as demo_urlpatterns

urlpatterns = [path("t/", include("tests.testapp.urls")), *demo_urlpatterns]
