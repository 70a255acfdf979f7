"""FLS-DB key performance indicators: definitions, computation in SQL and charts.

Knows nothing of Flask: it reads the portal's tables through SQLAlchemy Core names
(see kpis.schema) and is handed a connection or engine by its caller.
"""
