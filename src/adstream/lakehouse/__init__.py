"""The Iceberg lakehouse (SPEC section 6): catalog, table definitions, and queries over them."""
