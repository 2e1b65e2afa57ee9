"""The demo shop. Some columns are left unindexed on purpose: the demo pages exist
to show the problems the panels find (``published`` for a full scan on a filter,
``popularity`` for a sort through a temporary B-tree / filesort)."""

from django.db import models


class Category(models.Model):
    name = models.CharField(max_length=100)

    class Meta:
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    name = models.CharField(max_length=200)
    category = models.ForeignKey(Category, on_delete=models.CASCADE, related_name="products")
    price = models.DecimalField(max_digits=10, decimal_places=2)
    published = models.BooleanField(default=False)  # deliberately unindexed
    popularity = models.IntegerField(default=0)  # deliberately unindexed
    description = models.TextField(blank=True)

    def __str__(self) -> str:
        return self.name


class Review(models.Model):
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="reviews")
    rating = models.PositiveSmallIntegerField()
    text = models.TextField()

    def __str__(self) -> str:
        return f"{self.rating}/5 on {self.product_id}"
