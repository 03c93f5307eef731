"""The Spark enrichment job (SPEC section 5): rules as column expressions, the Iceberg writer."""
