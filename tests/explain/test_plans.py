"""The plan model and findings on recorded EXPLAIN output of each engine (a labelled set)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from debug_toolbar_perf.explain.findings import n_plus_one, plan_findings
from debug_toolbar_perf.explain.indexes import order_columns, suggest_index, where_predicates
from debug_toolbar_perf.explain.plans import (
    FULL_SCAN,
    INDEX_SCAN,
    number_nodes,
    parse_mysql,
    parse_postgresql,
    parse_sqlite,
    parse_text,
    repair_mysql_json,
)
from debug_toolbar_perf.explain.verify import compare
from shop.models import Category
from tests.explain.seed import alias_params, stored_shapes

CFG = {"FULL_SCAN_ROWS": 10_000, "REPEATED_QUERY_THRESHOLD": 5, "NESTED_LOOP_ROWS": 1000}
SQL_PUBLISHED = (
    'SELECT "shop_product"."id" FROM "shop_product" WHERE "shop_product"."published"'
    ' ORDER BY "shop_product"."id" ASC'
)


def shape(
    plan: Any,
    sql: str = SQL_PUBLISHED,
    sizes: dict[str, int] | None = None,
    vendor: str = "postgresql",
    **kw: Any,
) -> dict[str, Any]:
    return {
        "plan": number_nodes(plan.to_json()),
        "sql": sql,
        "vendor": vendor,
        "params": [],
        "table_rows": {t: [n, True, "test"] for t, n in (sizes or {}).items()},
        "kind": "select",
        "count": 1,
        **kw,
    }


def codes(found: list[dict[str, Any]]) -> list[str]:
    return sorted(f["code"] for f in found)


def pg(plan: dict[str, Any], **extra: Any) -> Any:
    return parse_postgresql([[{"Plan": plan, **extra}]])


SEQ = {
    "Node Type": "Seq Scan",
    "Relation Name": "shop_product",
    "Alias": "shop_product",
    "Plan Rows": 2000,
    "Total Cost": 2000.0,
    "Startup Cost": 0.0,
    "Filter": "shop_product.published",
}


def test_postgresql_parse_keeps_numbers_and_conditions() -> None:
    node = pg(SEQ)
    assert (node.kind, node.relation, node.est_rows) == (FULL_SCAN, "shop_product", 2000)
    assert node.condition == "Filter: shop_product.published"
    as_text = pg(SEQ).to_json()
    assert parse_postgresql(json.dumps([{"Plan": SEQ}])).to_json() == as_text  # psycopg2 text


@pytest.mark.parametrize(
    "size,expected",
    [(100_000, ["full_scan"]), (500, []), (10_000, [])],
    ids=["big-table", "small-table", "at-threshold"],
)
def test_full_scan_depends_on_table_size(size: int, expected: list[str]) -> None:
    assert codes(plan_findings(shape(pg(SEQ), sizes={"shop_product": size}), CFG)) == expected


def test_full_scan_with_unknown_size_is_not_a_finding() -> None:
    assert plan_findings(shape(pg(SEQ)), CFG) == []


def test_postgresql_scan_stopped_early_by_limit() -> None:
    limit = {"Node Type": "Limit", "Total Cost": 50.0, "Plan Rows": 50, "Plans": [SEQ]}
    sql = SQL_PUBLISHED + " LIMIT 50"
    # 50/2000 of a 100k table: 2,500 rows expected -> not a finding; 40% -> a finding
    assert plan_findings(shape(pg(limit), sql, {"shop_product": 100_000}), CFG) == []
    limit["Total Cost"] = 800.0
    assert codes(plan_findings(shape(pg(limit), sql, {"shop_product": 100_000}), CFG)) == [
        "full_scan"
    ]


SQLITE_SCAN = [(2, 0, 0, "SCAN shop_product")]


@pytest.mark.parametrize(
    "matches,expected,title",
    [
        ([501, 501], [], None),  # the cap was reached: at most 50 * 100k / 501 rows are read
        ([2000, 2001], [], None),  # 2% match: about 2,500 rows read
        ([300, 501], ["full_scan"], "Full scan of shop_product: about 16,667 rows read"),
        ([10, 501], ["full_scan"], "Full scan of shop_product (100,000 rows)"),  # < LIMIT
        (None, ["full_scan"], "Full scan of shop_product (100,000 rows)"),  # not counted
    ],
    ids=["cap-reached", "selective-enough", "rare", "fewer-than-limit", "unknown"],
)
def test_limited_scan_is_judged_by_the_rows_it_reads(
    matches: list[int] | None, expected: list[str], title: str | None
) -> None:
    """An ``ORDER BY pk LIMIT 50`` after a filter scans a big table but stops early: the
    finding depends on the rows it reads (from the rows that match), not the table size."""
    found = plan_findings(
        shape(
            parse_sqlite(SQLITE_SCAN),
            SQL_PUBLISHED + " LIMIT 50",
            {"shop_product": 100_000},
            vendor="sqlite",
            limit_matches=matches,
        ),
        CFG,
    )
    assert codes(found) == expected
    if title:
        assert found[0]["title"] == title
        read = 16_667 if "about" in title else 100_000
        assert found[0]["evidence"]["rows_read"] == read
    if matches is None and found:
        assert "how early is not known" in found[0]["detail"]


def test_limit_with_offset_counts_the_skipped_rows() -> None:
    """OFFSET 950 LIMIT 50: 1,000 matching rows are read through (50,000 rows at 2%)."""
    sql = SQL_PUBLISHED + " LIMIT 50 OFFSET 950"
    found = plan_findings(
        shape(
            parse_sqlite(SQLITE_SCAN),
            sql,
            {"shop_product": 100_000},
            vendor="sqlite",
            limit_matches=[2000, 5001],
        ),
        CFG,
    )
    assert [f["evidence"]["rows_read"] for f in found] == [50_000]


def test_analyze_counts_the_rows_read_not_the_table() -> None:
    """EXPLAIN ANALYZE: rows kept plus rows removed by the filter, per loop."""
    analysed = {**SEQ, "Actual Rows": 50, "Rows Removed by Filter": 2450, "Actual Loops": 1}
    limit = {"Node Type": "Limit", "Total Cost": 50.0, "Plan Rows": 50, "Plans": [analysed]}
    sizes = {"shop_product": 100_000}
    sql = SQL_PUBLISHED + " LIMIT 50"
    assert "full_scan" not in codes(plan_findings(shape(pg(limit), sql, sizes), CFG))
    analysed["Rows Removed by Filter"] = 99_950
    (found,) = [
        f for f in plan_findings(shape(pg(limit), sql, sizes), CFG) if f["code"] == "full_scan"
    ]
    assert found["evidence"]["rows_read"] == 100_000
    assert found["evidence"]["read_source"] == "measured by ANALYZE"


def test_index_lookup_is_not_a_finding() -> None:
    node = pg(
        {
            "Node Type": "Index Scan",
            "Relation Name": "shop_product",
            "Index Name": "shop_product_pkey",
            "Index Cond": "(id = 5)",
            "Plan Rows": 1,
        }
    )
    assert node.kind == INDEX_SCAN
    assert plan_findings(shape(node, sizes={"shop_product": 10**6}), CFG) == []


def test_index_scan_without_condition_walks_the_whole_index() -> None:
    node = pg(
        {
            "Node Type": "Index Scan",
            "Relation Name": "shop_product",
            "Index Name": "shop_product_pkey",
            "Filter": "published",
            "Plan Rows": 2000,
        }
    )
    assert node.kind == FULL_SCAN and "full_index_scan" in node.flags


def test_sort_spilling_to_disk_is_a_finding_even_when_small() -> None:
    sort = {
        "Node Type": "Sort",
        "Sort Key": ["popularity DESC"],
        "Plan Rows": 5000,
        "Actual Rows": 5000,
        "Actual Loops": 1,
        "Sort Method": "external merge",
        "Sort Space Type": "Disk",
        "Sort Space Used": 2000,
        "Plans": [{**SEQ, "Plan Rows": 5000, "Filter": None}],
    }
    sql = 'SELECT * FROM "shop_product" ORDER BY "shop_product"."popularity" DESC'
    found = plan_findings(shape(pg(sort), sql, {"shop_product": 5000}), CFG)
    assert codes(found) == ["temp_sort"]
    assert found[0]["evidence"]["spills"] and found[0]["severity"] == "high"
    assert "popularity DESC" in found[0]["suggestion"]
    sort.update({"Sort Method": "quicksort", "Sort Space Type": "Memory"})
    assert plan_findings(shape(pg(sort), sql, {"shop_product": 5000}), CFG) == []


def test_nested_loop_over_many_outer_rows() -> None:
    inner = {
        "Node Type": "Index Scan",
        "Relation Name": "shop_category",
        "Index Cond": "id = x",
        "Plan Rows": 1,
    }
    loop = {
        "Node Type": "Nested Loop",
        "Plan Rows": 50_000,
        "Plans": [{**SEQ, "Plan Rows": 50_000, "Filter": None}, inner],
    }
    sql = 'SELECT * FROM "shop_product" INNER JOIN "shop_category" ON (1=1)'
    found = plan_findings(shape(pg(loop), sql, {"shop_product": 5_000}), CFG)
    assert codes(found) == ["nested_loop"]
    loop["Plans"][0]["Plan Rows"] = 200
    assert plan_findings(shape(pg(loop), sql, {"shop_product": 5_000}), CFG) == []
    # under a LIMIT the estimate overstates the loop: no finding without ANALYZE numbers
    limited = {
        "Node Type": "Limit",
        "Plans": [{**loop, "Plans": [{**SEQ, "Plan Rows": 50_000, "Filter": None}, inner]}],
    }
    assert plan_findings(shape(pg(limited), sql, {"shop_product": 5_000}), CFG) == []


def test_rows_removed_by_filter_needs_analyze_numbers() -> None:
    scan = {
        "Node Type": "Bitmap Heap Scan",
        "Relation Name": "shop_product",
        "Recheck Cond": "(category_id = 3)",
        "Plan Rows": 5,
        "Actual Rows": 5,
        "Actual Loops": 1,
        "Rows Removed by Filter": 4995,
        "Filter": "(popularity < 1000)",
    }
    sql = (
        'SELECT * FROM "shop_product" WHERE ("shop_product"."category_id" = %s AND '
        '"shop_product"."popularity" < %s)'
    )
    found = plan_findings(shape(pg(scan), sql), CFG)
    assert codes(found) == ["rows_removed"]
    assert found[0]["suggestion"] == (
        "CREATE INDEX shop_product_category_id_popularity_idx ON shop_product "
        "(category_id, popularity)"
    )
    scan["Rows Removed by Filter"] = 3
    assert plan_findings(shape(pg(scan), sql), CFG) == []


MARIADB_FILESORT = {
    "query_block": {
        "select_id": 1,
        "nested_loop": [
            {
                "read_sorted_file": {
                    "filesort": {
                        "sort_key": "shop_product.popularity desc",
                        "table": {
                            "table_name": "shop_product",
                            "access_type": "ALL",
                            "rows": 99_000,
                            "filtered": 100,
                        },
                    }
                }
            }
        ],
    }
}


def test_mariadb_parse_double_encoded_and_filesort() -> None:
    twice = json.dumps(json.dumps(MARIADB_FILESORT))
    node = parse_mysql(twice)
    assert node.to_json() == parse_mysql(json.dumps(MARIADB_FILESORT)).to_json()
    sql = "SELECT * FROM `shop_product` ORDER BY `shop_product`.`popularity` DESC LIMIT 20"
    found = plan_findings(shape(node, sql, {"shop_product": 99_000}, vendor="mysql"), CFG)
    assert codes(found) == ["full_scan", "temp_sort"]
    small = plan_findings(
        shape(
            parse_mysql(json.dumps(MARIADB_FILESORT)), sql, {"shop_product": 900}, vendor="mysql"
        ),
        CFG,
    )
    assert small == []


def test_mariadb_has_no_partial_index() -> None:
    node = parse_mysql(
        json.dumps(
            {
                "query_block": {
                    "table": {
                        "table_name": "shop_product",
                        "access_type": "ALL",
                        "rows": 99_000,
                        "attached_condition": "shop_product.published",
                    }
                }
            }
        )
    )
    sql = "SELECT * FROM `shop_product` WHERE `shop_product`.`published`"
    found = plan_findings(shape(node, sql, {"shop_product": 99_000}, vendor="mysql"), CFG)
    assert found[0]["suggestion"] == (
        "CREATE INDEX shop_product_published_idx ON shop_product (published)"
    )


def test_sqlite_rows_become_a_tree() -> None:
    rows = [
        (2, 0, 0, "SCAN shop_product"),
        (7, 0, 0, "SEARCH shop_category USING INTEGER PRIMARY KEY (rowid=?)"),
        (12, 0, 0, "USE TEMP B-TREE FOR ORDER BY"),
    ]
    root = parse_sqlite(rows)
    assert [c.kind for c in root.children] == [FULL_SCAN, INDEX_SCAN, "sort"]
    assert root.children[1].index == "rowid"
    sql = (
        'SELECT * FROM "shop_product" INNER JOIN "shop_category" ON (x) '
        'ORDER BY "shop_product"."popularity" DESC'
    )
    assert codes(
        plan_findings(shape(root, sql, {"shop_product": 100_000}, vendor="sqlite"), CFG)
    ) == ["full_scan", "temp_sort"]
    assert plan_findings(shape(root, sql, {"shop_product": 300}, vendor="sqlite"), CFG) == []


def test_sqlite_nested_full_scans() -> None:
    root = parse_sqlite([(2, 0, 0, "SCAN a"), (5, 0, 0, "SCAN b")])
    found = plan_findings(
        shape(root, 'SELECT * FROM "a", "b"', {"a": 5000, "b": 200}, vendor="sqlite"), CFG
    )
    assert codes(found) == ["nested_loop"]


def test_other_backends_show_raw_text() -> None:
    root = parse_text([("Seq Scan on t",), ("  Filter: x",)])
    assert [c.type for c in root.children] == ["Seq Scan on t", "  Filter: x"]


def test_predicates_and_order_columns() -> None:
    sql = (
        'SELECT "t"."a" AS "x" FROM "t" WHERE ("t"."b" = %s AND "t"."c" IS NULL AND '
        'NOT "t"."d" AND "t"."e" > %s) ORDER BY 1 DESC'
    )
    preds = {p.column: p.op for p in where_predicates(sql, "t", [["bool", True], ["int", 3]])}
    assert preds == {"b": "=", "c": "is null", "d": "not bool", "e": "range"}
    assert order_columns(sql, "t") == ["a DESC"]
    stmt, _ = suggest_index(sql, "t", [["bool", True], ["int", 3]], True)
    # equality -> sort -> range: the range column after the sort column. `b = %s` (True) is
    # an equality that leads the index, not a partial `WHERE b`: SQLite never matches the
    # query's `b = True` (Django 6.1's spelling) to an index's `WHERE b`.
    assert stmt == ("CREATE INDEX t_c_d_idx ON t (b, a DESC, e) WHERE c IS NULL AND NOT d")


def test_n_plus_one_threshold() -> None:
    sql = 'SELECT "shop_category"."id" FROM "shop_category" WHERE "shop_category"."id" = %s'
    lines = [{"file": "/x/views.py", "line": 3, "project": True, "code": "p.category.name"}]
    assert n_plus_one({"kind": "select", "count": 4, "sql": sql, "lines": lines}, CFG) is None
    found = n_plus_one({"kind": "select", "count": 5, "sql": sql, "lines": lines}, CFG)
    assert found and 'select_related("category")' in found["orm"]


NASTY = ["O'Brien", "a\\'b", "back\\slash\\", 'dq"x', "naïve ☃ 日本", "'; --", "\\\\'"]


@pytest.mark.parametrize("alias", alias_params())
@pytest.mark.django_db(databases="__all__", transaction=True)
def test_plans_parse_whatever_the_parameters(alias: str) -> None:
    """Quotes, backslashes and unicode in a filter: MariaDB prints ``\\'`` in its JSON plan
    (not valid JSON); every engine's plan must still parse."""
    for value in NASTY:
        (shape,) = stored_shapes(
            alias,
            lambda v=value: list(
                Category.objects.using(alias).filter(name=v).exclude(name__contains=v)
            ),
        )
        assert shape["plan"] and shape["plan_error"] is None, (value, shape["plan_error"])


def test_mariadb_json_plan_is_repaired() -> None:
    """What MariaDB 10.11 prints for string constants (copied from its output): ``\\'``, an
    unescaped ``"``, an escaped backslash, ``\\n`` and a raw tab."""
    condition = (
        "lg.n > 1 and concat(lg.n,'') = 'dq\"x' and concat(lg.n,'a') = 'O\\'B' and "
        "concat(lg.n,'b') = 'b\\\\s' and concat(lg.n,'c') = 'nl\\nx' and "
        "concat(lg.n,'d') = 'tab\tx'"
    )
    text = (
        '{"query_block": {"select_id": 1, "table": {"table_name": "lg", "access_type": "ALL",'
        f' "attached_condition": "{condition}"}}}}}}'
    )
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    plan = parse_mysql(text)
    (scan,) = plan.children
    assert scan.kind == FULL_SCAN and scan.relation == "lg"
    assert json.loads(repair_mysql_json(text), strict=False)["query_block"]["table"][
        "attached_condition"
    ] == condition.replace("\\'", "'").replace("\\\\", "\\").replace("\\n", "\n")


def test_a_suggestion_the_planner_could_not_check_says_why() -> None:
    """PostgreSQL refuses the rolled-back CREATE INDEX in a transaction that inserted rows
    with deferred foreign keys: the suggestion is shown as not verified, with that reason."""
    ddl = "CREATE INDEX shop_product_published_idx ON shop_product (id) WHERE published"
    error = 'ObjectInUse: cannot CREATE INDEX "shop_product" because it has pending trigger events'
    checks = {ddl: {"method": "not verified by the planner", "used": None, "error": error}}
    (found,) = plan_findings(
        shape(pg(SEQ), sizes={"shop_product": 100_000}, index_checks=checks), CFG
    )
    assert found["suggestion"] == ddl
    assert f"(not verified by the planner: {error}.)" in found["detail"]


def test_verified_plan_steps_name_each_index_once() -> None:
    """SQLite's step text names its index; PostgreSQL's node type does not."""
    before = parse_sqlite([(2, 0, 0, "SCAN shop_product")])
    after = parse_sqlite([(2, 0, 0, "SCAN shop_product USING INDEX shop_product_published_idx")])
    check = compare(before, after, "shop_product_published_idx", "m")
    assert check["used"] is True
    assert check["plan_before"] == ["SCAN shop_product"]
    assert check["plan_after"] == ["SCAN shop_product USING INDEX shop_product_published_idx"]
    pg_after = pg({"Node Type": "Index Scan", "Relation Name": "t", "Index Name": "t_idx"})
    assert compare(pg(SEQ), pg_after, "t_idx", "m")["plan_after"] == ["Index Scan t_idx"]
