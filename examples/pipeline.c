/*
 * pipeline.c - a C program that uses a stored connection through libconnrt.
 *
 * usage: pipeline CONNECTION URL     (prints the status on stderr and the body on stdout)
 *        pipeline CONNECTION --token (prints a valid access token)
 * Built by `make` as build/examples/pipeline; the specs run it.
 */
#include <stdio.h>
#include <string.h>

#include <connrt.h>

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s CONNECTION URL | --token\n", argv[0]);
    return 2;
  }
  connrt *rt;
  connrt_code rc = connrt_open(&rt, NULL);
  if (rc != CONNRT_OK) {
    fprintf(stderr, "pipeline: %s (%s; reason: %s)\n", connrt_errmsg(rt), connrt_strerror(rc), connrt_errreason(rt));
    connrt_close(rt);
    return (int)rc;
  }
  if (strcmp(argv[2], "--token") == 0) {
    char *token;
    rc = connrt_token(rt, argv[1], &token);
    if (rc == CONNRT_OK) {
      printf("%s\n", token);
      connrt_free(token);
    }
  } else {
    const char *headers[] = { "Accept: application/json", NULL };
    connrt_response res;
    rc = connrt_request(rt, argv[1], "GET", argv[2], headers, NULL, 0, &res);
    if (rc == CONNRT_OK) {
      fprintf(stderr, "%d\n", res.status);
      fwrite(res.body, 1, res.body_len, stdout);
      connrt_response_free(&res);
    }
  }
  /* the reason, for the program that runs this one: "locked", "needs_reconnect", ... */
  if (rc != CONNRT_OK)
    fprintf(stderr, "pipeline: %s (%s; reason: %s)\n", connrt_errmsg(rt), connrt_strerror(rc), connrt_errreason(rt));
  connrt_close(rt);
  return (int)rc;
}
