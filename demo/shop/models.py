"""The demo shop. Some columns are left unindexed on purpose: the demo pages exist
to show the problems the panels find (``published`` for a full scan on a filter,
``popularity`` for a sort through a temporary B-tree / filesort)."""

from django.conf import settings
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

    def shelf_label(self) -> str:
        """Deliberately slow, and called from a template: the hot function of the catalogue
        page, which runs while Django renders the view's TemplateResponse."""
        checksum = 0
        for i in range(15_000):  # a naive check digit over the name, recomputed per row
            checksum = (checksum * 31 + ord(self.name[i % len(self.name)])) % 1_000_003
        return f"{self.name[:12]}-{checksum % 97:02d}"


class Review(models.Model):
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="reviews")
    rating = models.PositiveSmallIntegerField()
    text = models.TextField()

    def __str__(self) -> str:
        return f"{self.rating}/5 on {self.product_id}"


class Order(models.Model):
    """An order placed through the demo's JSON API (``POST /api/orders/``)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"order {self.pk} by {self.user_id}"


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(Product, on_delete=models.PROTECT)
    quantity = models.PositiveIntegerField()
    price = models.DecimalField(max_digits=10, decimal_places=2)

    def __str__(self) -> str:
        return f"{self.quantity} x {self.product_id}"
