"""logjam: compress finished hourly log files and ship them to S3, safely."""

__version__ = "1.0.0.dev0"
