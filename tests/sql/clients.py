"""Real Postgres drivers against August's SQL endpoint (run by tests/sql_endpoint.rs).

psycopg 3 with server-side parameters (extended protocol), text and binary results; asyncpg,
which binds every parameter and reads every result in binary. Prints one line per check.
"""
import asyncio
import os

import asyncpg
import psycopg

DSN = os.environ["AUGUST_SQL_DSN"]

with psycopg.connect(DSN) as conn:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT appointment_id, duration, scheduled_time, clinical_note_locked FROM scheduling_ops"
            " WHERE patient_id = %s AND status = %s",
            (7, "Arrived"),
        )
        (appt, duration, at, locked) = cur.fetchone()
        print(f"psycopg text: {appt} {duration} {at} {locked}")
    with conn.cursor(binary=True) as cur:
        cur.execute("SELECT count(*), max(duration) + %s FROM scheduling_ops WHERE duration > %s", (10, 5))
        (count, longest) = cur.fetchone()
        print(f"psycopg binary: {count} {longest}")
    with conn.cursor() as cur:
        try:
            cur.execute("UPDATE scheduling_ops SET status = %s", ("x",))
            raise SystemExit("an UPDATE was accepted")
        except psycopg.errors.ReadOnlySqlTransaction:
            print("psycopg refused: 25006")


async def with_asyncpg():
    conn = await asyncpg.connect(
        host="127.0.0.1", port=int(os.environ["AUGUST_SQL_PORT"]), user="ops_admin",
        password=os.environ["AUGUST_SQL_PASSWORD"], database="august",
    )
    row = await conn.fetchrow(
        "SELECT appointment_id, duration, scheduled_time, deepcura_linked FROM scheduling_ops WHERE patient_id = $1", 7
    )
    print(f"asyncpg: {row['appointment_id']} {row['duration']} {row['scheduled_time']} {row['deepcura_linked']}")
    statement = await conn.prepare("SELECT count(*) FROM scheduling_ops WHERE duration >= $1")
    print(f"asyncpg prepared: {await statement.fetchval(50)} {await statement.fetchval(51)}")
    await conn.close()


asyncio.run(with_asyncpg())
