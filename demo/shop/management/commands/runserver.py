"""runserver that migrates and seeds the demo database first, so one command starts the demo."""

from django.contrib.staticfiles.management.commands.runserver import Command as StaticRunserver
from django.core.management import call_command


class Command(StaticRunserver):
    def inner_run(self, *args, **options):
        # inner_run runs in the serving process (after the autoreloader forks),
        # so this happens once per start, not once per reload watcher.
        call_command("migrate", interactive=False, verbosity=0)
        call_command("seed_demo")
        super().inner_run(*args, **options)
