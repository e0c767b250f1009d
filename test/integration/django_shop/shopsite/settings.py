"""Settings of the Django 4.2 project test_python_follow_django.py runs.

Two aliases on the same database: ``default`` connects as the application's
plain role (CSIT_DJANGO_APP_USER), ``migrations`` as the role that owns the
tables and runs ``migrate --database migrations`` (CSIT_DJANGO_MIGRATOR).
"""

import os

_common = {
    "ENGINE": "django.db.backends.postgresql",
    "NAME": os.environ["CSIT_DJANGO_DBNAME"],
    "HOST": os.environ["CSIT_DJANGO_HOST"],
    "PORT": os.environ["CSIT_DJANGO_PORT"],
    "CONN_MAX_AGE": 0,
}
DATABASES = {
    "default": dict(_common, USER=os.environ["CSIT_DJANGO_APP_USER"]),
    "migrations": dict(_common, USER=os.environ["CSIT_DJANGO_MIGRATOR"]),
}
INSTALLED_APPS = ["shop"]
SECRET_KEY = "not-a-secret: test project"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
