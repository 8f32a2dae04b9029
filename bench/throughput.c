/*
 * throughput.c - N GETs through one connection from C (libconnrt), one process.
 * usage: throughput CONNECTION URL N   (prints {"seconds": S})
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <connrt.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s CONNECTION URL N\n", argv[0]);
    return 2;
  }
  long n = strtol(argv[3], NULL, 10);
  connrt *rt;
  if (connrt_open(&rt, NULL) != CONNRT_OK) {
    fprintf(stderr, "throughput: %s\n", connrt_errmsg(rt));
    connrt_close(rt);
    return 1;
  }
  connrt_response res;
  double t0 = 0;
  for (long i = -1; i < n; i++) { /* i = -1 warms up, untimed */
    if (i == 0) t0 = now();
    if (connrt_request(rt, argv[1], "GET", argv[2], NULL, NULL, 0, &res) != CONNRT_OK || res.status != 200) {
      fprintf(stderr, "throughput: request %ld: %s (status %d)\n", i, connrt_errmsg(rt), res.status);
      connrt_close(rt);
      return 1;
    }
    connrt_response_free(&res);
  }
  printf("{\"seconds\": %.6f}\n", now() - t0);
  connrt_close(rt);
  return 0;
}
