"""Test-only models for the instances panel: a proxy, a custom __init__, an abstract base."""

from __future__ import annotations

from typing import Any

from django.db import models


class Stamped(models.Model):
    created_note = models.CharField(max_length=20, default="")

    class Meta:
        abstract = True


class Widget(Stamped):
    name = models.CharField(max_length=50)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.built_by_custom_init = True
        super().__init__(*args, **kwargs)


class WidgetProxy(Widget):
    class Meta:
        proxy = True
