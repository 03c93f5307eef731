"""Local services adstream runs itself (SPEC section 1): start, wait until ready, stop."""
