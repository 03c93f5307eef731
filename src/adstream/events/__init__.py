"""Input events: schemas, validation, time rules and outcome codes (SPEC sections 2 and 4).

Pure Python: imports no engine, so every engine's schema is derived from (or tested against)
the definitions here.
"""
