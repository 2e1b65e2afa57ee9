"""The admin changelist of the real-app tests: a ``list_display`` method that follows a
foreign key per row (an N+1 inside the admin's template rendering), search and a filter."""

from __future__ import annotations

from django.contrib import admin

from .models import Book


@admin.register(Book)
class BookAdmin(admin.ModelAdmin):
    list_display = ("title", "author_name", "pages")
    search_fields = ("title",)
    list_filter = ("published",)

    @admin.display(description="author")
    def author_name(self, obj: Book) -> str:
        return obj.author.name
