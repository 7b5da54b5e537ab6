from django.apps import AppConfig


class CentreApp(AppConfig):
    name = "detector.centre"
    label = "centre"
    verbose_name = "Management centre"
    default_auto_field = "django.db.models.BigAutoField"
