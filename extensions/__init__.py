"""Extensions: components beside the pipelines (health endpoints; the query API lives in
query/, its extension glue in query/extension.py)."""
