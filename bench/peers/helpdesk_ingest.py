"""django-helpdesk's own email import, timed (runs inside .cache/bench/helpdesk-venv).

``python helpdesk_ingest.py WORKDIR MAILDIR`` builds a throwaway Django project (SQLite in
WORKDIR), creates one queue with ``email_box_type='local'`` reading MAILDIR, runs the
management command ``get_email`` once and prints one JSON line: seconds, tickets,
follow-ups, messages left unprocessed.
"""

import json
import os
import sys
import time


def main() -> None:
    workdir, maildir = sys.argv[1], sys.argv[2]
    with open(os.path.join(workdir, "bench_urls.py"), "w") as f:
        f.write("from django.urls import include, path\n"
                "urlpatterns = [path('helpdesk/',\n"
                "                     include('helpdesk.urls', namespace='helpdesk'))]\n")
    sys.path.insert(0, workdir)
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-only",
        ALLOWED_HOSTS=["*"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3",
                               "NAME": os.path.join(workdir, "helpdesk.sqlite3")}},
        INSTALLED_APPS=["django.contrib.admin", "django.contrib.auth",
                        "django.contrib.contenttypes", "django.contrib.sessions",
                        "django.contrib.messages", "django.contrib.staticfiles",
                        "django.contrib.sites", "django.contrib.humanize", "rest_framework",
                        "helpdesk"],
        MIDDLEWARE=[], ROOT_URLCONF="bench_urls", SITE_ID=1, USE_TZ=True,
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates",
                    "APP_DIRS": True, "OPTIONS": {"context_processors": []}}],
        STATIC_URL="/static/", MEDIA_ROOT=os.path.join(workdir, "media"),
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
        DEFAULT_FROM_EMAIL="help@onestop.go.th",
        HELPDESK_TEAMS_MODE_ENABLED=False,
        LOGGING={"version": 1, "disable_existing_loggers": True},
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    )
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    from helpdesk.models import FollowUp, Queue, Ticket

    Queue.objects.all().delete()
    Queue.objects.create(title="General", slug="general", email_address="help@onestop.go.th",
                         allow_email_submission=True, email_box_type="local",
                         email_box_local_dir=maildir, email_box_interval=0)
    files = len(os.listdir(maildir))
    started = time.perf_counter()
    call_command("get_email")
    elapsed = time.perf_counter() - started
    print(json.dumps({"seconds": elapsed, "files": files, "tickets": Ticket.objects.count(),
                      "followups": FollowUp.objects.count(),
                      "left": len(os.listdir(maildir))}))


if __name__ == "__main__":
    main()
