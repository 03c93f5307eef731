"""The Flink join stage (SPEC sections 2-4): validate, dedupe, attribute clicks, route outcomes.

`sql` builds the job's SQL from the event schema (no engine import); `job` runs it in PyFlink
inside `.venv-flink`; `launcher` starts that process from the app environment.
"""
