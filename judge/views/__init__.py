"""Views: results rendered for people (rich tables for the terminal; more formats beside them)."""
