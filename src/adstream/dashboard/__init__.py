"""`adstream dashboard`: a web page of live campaign metrics (docs/dashboard.md).

`queries` holds the data API's fixed, parameterised queries (run by `adstream.query`), `app`
the FastAPI application and its page, `server` the uvicorn server that `adstream dashboard`
runs in the foreground and `adstream run` in a thread.
"""
