"""The births sample in DuckDB, read straight from the raw file: the independent oracle of the client suites."""
import duckdb


def births(path, time_column):
    """A DuckDB connection holding table `births`, its epoch-ms `ds` as a TIMESTAMP named `time_column`."""
    duck = duckdb.connect()
    duck.execute(
        f"CREATE TABLE births AS SELECT epoch_ms(CAST(ds AS BIGINT)) AS {time_column}, * EXCLUDE (ds) "
        f"FROM read_json_auto('{path}', format='array')"
    )
    return duck
