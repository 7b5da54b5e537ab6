"""Django's settings, made from the centre's config (no settings module to edit: one YAML file
configures the edge and the centre alike). Secrets come from the config's `${VAR}`s, so from the
environment; none of them is ever logged."""

import secrets
from pathlib import Path

import django
from django.conf import settings

from detector.centre.config import CentreConfig
from detector.errors import ConfigError


def configure(config: CentreConfig) -> None:
    """Once per process, before anything imports a model."""
    if settings.configured:
        return
    storage = Path(config.storage_dir)
    folders = [storage] + ([Path(config.database.path).parent] if config.database.engine == "sqlite" else [])
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"{folder}: cannot create it ({exc.strerror})") from None
    settings.configure(
        DEBUG=False,
        SECRET_KEY=_secret_key(config, storage),
        ALLOWED_HOSTS=config.web.allowed_hosts,
        INSTALLED_APPS=[
            "django.contrib.admin",
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
            "detector.centre.apps.CentreApp",
        ],
        MIDDLEWARE=[
            "django.middleware.security.SecurityMiddleware",
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.auth.middleware.LoginRequiredMiddleware",  # no page without login (Open311: its key)
            "django.contrib.messages.middleware.MessageMiddleware",
            "django.middleware.clickjacking.XFrameOptionsMiddleware",
        ],
        ROOT_URLCONF="detector.centre.urls",
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "APP_DIRS": True,
                "OPTIONS": {
                    "context_processors": [
                        "django.template.context_processors.request",
                        "django.contrib.auth.context_processors.auth",
                        "django.contrib.messages.context_processors.messages",
                        "detector.centre.roles.context",
                    ]
                },
            }
        ],
        DATABASES={"default": database(config)},
        PASSWORD_HASHERS=["django.contrib.auth.hashers.Argon2PasswordHasher"],
        AUTH_PASSWORD_VALIDATORS=[
            {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
            {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
            {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
        ],
        LOGIN_URL="/login/",
        LOGIN_REDIRECT_URL="/",
        SESSION_COOKIE_SECURE=config.web.secure_cookies,
        CSRF_COOKIE_SECURE=config.web.secure_cookies,
        SESSION_COOKIE_AGE=12 * 3600,  # one shift
        X_FRAME_OPTIONS="DENY",
        SECURE_CONTENT_TYPE_NOSNIFF=True,
        USE_TZ=True,
        TIME_ZONE=config.timezone,
        DATA_UPLOAD_MAX_MEMORY_SIZE=12 << 20,  # an officer's photo
        FILE_UPLOAD_MAX_MEMORY_SIZE=12 << 20,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        LOGGING_CONFIG=None,  # the detector's own logging (detector/logs.py)
        CENTRE=config,
        CENTRE_STORAGE=storage,
    )
    django.setup()


def database(config: CentreConfig) -> dict:
    db = config.database
    if db.engine == "sqlite":
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(db.path),
            # IMMEDIATE: a writer takes the lock when its transaction begins, so two writers wait
            # for each other instead of one failing with "database is locked" halfway through
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    return {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": db.host,
        "PORT": db.port,
        "NAME": db.name,
        "USER": db.user,
        "PASSWORD": db.password.get_secret_value() if db.password else "",
        "CONN_MAX_AGE": 600,
        "CONN_HEALTH_CHECKS": True,  # a restarted server: the next request gets a new connection
        "OPTIONS": {"connect_timeout": 5},
    }


def _secret_key(config: CentreConfig, storage: Path) -> str:
    """The config's, or one made at first start and kept (mode 600) so sessions survive restarts.
    Several instances must share one: set web.secret_key from the environment for them."""
    if config.web.secret_key is not None:
        return config.web.secret_key.get_secret_value()
    path = storage / "secret_key"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(50))
    return path.read_text().strip()
