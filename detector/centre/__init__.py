"""The management centre (`detector centre CONFIG`, extra `[centre]`): MQTT ingest of every
site's alerts, snapshots, status and health into a database, cases with their life cycle, the
dispatcher's, officer's, fleet and figures pages, and a read-only Open311 view (docs/centre.md).

A Django project: users, groups, argon2 password hashing, sessions, CSRF, versioned migrations
and the admin site come from the framework, so the security-critical code is not written here.
The edge runtime never imports this package."""
