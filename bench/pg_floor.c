/*
 * pg_floor.c - the floor under `connrt token` on a PostgreSQL store, for bench.py's
 * section 9: a process that connects with libpq (the same URL, so the same login) and
 * runs one query, nothing else. No process that opens a new database connection per
 * call can be faster than this on the machine it runs on.
 * usage: pg_floor URL
 */
#include <stdio.h>

#include <libpq-fe.h>

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: pg_floor URL\n");
    return 2;
  }
  PGconn *pg = PQconnectdb(argv[1]);
  if (PQstatus(pg) != CONNECTION_OK) {
    fprintf(stderr, "pg_floor: %s", PQerrorMessage(pg));
    PQfinish(pg);
    return 1;
  }
  PGresult *r = PQexec(pg, "SELECT 1");
  int ok = PQresultStatus(r) == PGRES_TUPLES_OK;
  PQclear(r);
  PQfinish(pg);
  return ok ? 0 : 1;
}
