from django.core.management.base import BaseCommand

from shop.seed import ensure_demo_user, is_seeded, seed


class Command(BaseCommand):
    help = "Fill the demo database (idempotent: does nothing if it already has products)."

    def handle(self, *args, **options):
        ensure_demo_user()
        if is_seeded():
            self.stdout.write("Demo data already present.")
            return
        self.stdout.write("Seeding the demo database (about 10 s)...")
        seed(verbose=options["verbosity"] > 1)
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
