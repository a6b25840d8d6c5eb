"""A Temporal-backed scenario engine for Feishu: plugins bring workflows, rules and templates."""

__version__ = "0.1.0"
