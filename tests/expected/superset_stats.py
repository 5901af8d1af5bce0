#!/usr/bin/env python3
"""Independent expected values for the loader tests: row counts, per-column sums and time ranges of the
Superset example files, computed with Python's own csv/json/gzip modules (no basalt code involved).

Usage: superset_stats.py births|flights|sales FILE  -> prints one JSON object.
"""
import calendar
import csv
import gzip
import json
import sys
from datetime import datetime


def births(path):
    rows = json.load(gzip.open(path, "rt"))
    return {
        "rows": len(rows),
        "sum_num": sum(r["num"] for r in rows),
        "sum_num_boys": sum(r["num_boys"] for r in rows),
        "sum_num_girls": sum(r["num_girls"] for r in rows),
        "min_time": min(r["ds"] for r in rows),
        "max_time": max(r["ds"] for r in rows),
        "rows_before_1970": sum(1 for r in rows if r["ds"] < 0),
        "distinct_state": len({r["state"] for r in rows}),
        "rollup_day_gender_state_groups": len({(r["ds"] // 86400000, r["gender"], r["state"]) for r in rows}),
        "max_num_boys_sum_over_groups": sum(
            max_by_group.values()
        ) if (max_by_group := _max_by(rows)) else 0,
    }


def _max_by(rows):
    out = {}
    for r in rows:
        k = (r["ds"] // 86400000, r["gender"], r["state"])
        out[k] = max(out.get(k, r["num_boys"]), r["num_boys"])
    return out


def flights(path):
    rows = list(csv.DictReader(gzip.open(path, "rt", newline="")))
    def ms(r):
        return calendar.timegm((int(r["YEAR"]), int(r["MONTH"]), int(r["DAY"]), 0, 0, 0)) * 1000
    delays = [int(r["DEPARTURE_DELAY"]) for r in rows if r["DEPARTURE_DELAY"] != ""]
    per_day = {}
    for r in rows:
        per_day[str(ms(r))] = per_day.get(str(ms(r)), 0) + 1
    return {
        "rows": len(rows),
        "sum_distance": sum(int(r["DISTANCE"]) for r in rows),
        "sum_departure_delay": sum(delays),
        "null_departure_delay": len(rows) - len(delays),
        "min_time": min(ms(r) for r in rows),
        "max_time": max(ms(r) for r in rows),
        "rows_per_day": per_day,
        "distinct_airline": len({r["AIRLINE"] for r in rows}),
    }


def sales(path):
    rows = list(csv.DictReader(gzip.open(path, "rt", newline="")))
    def ms(r):
        d = datetime.strptime(r["order_date"], "%m/%d/%Y")
        return calendar.timegm(d.timetuple()) * 1000
    return {
        "rows": len(rows),
        "sum_sales": sum(float(r["sales"]) for r in rows),
        "sum_quantity_ordered": sum(int(r["quantity_ordered"]) for r in rows),
        "min_time": min(ms(r) for r in rows),
        "max_time": max(ms(r) for r in rows),
        "distinct_city": len({r["city"] for r in rows}),
        "addresses_with_commas": sum(1 for r in rows if "," in r["address_line1"]),
    }


if __name__ == "__main__":
    kind, path = sys.argv[1], sys.argv[2]
    print(json.dumps({"births": births, "flights": flights, "sales": sales}[kind](path)))
