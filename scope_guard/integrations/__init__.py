"""Adapters to host frameworks. Each lives in its own subpackage and is imported explicitly
(``import scope_guard.integrations.langchain``), so that the framework is loaded only by the
application that uses it; nothing here imports one eagerly."""
