"""Shared test set-up. Fixtures live in tests/fixtures/, one plugin module per area."""

pytest_plugins = [
    "fixtures.sandbox_fixtures",
    "fixtures.fault_server",
    "fixtures.lab_fixtures",
    "fixtures.widget_fixtures",
    "fixtures.proxy_fixtures",
]
