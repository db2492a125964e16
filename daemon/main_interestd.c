/* interestd: the streaming daemon's entry point. */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--version") == 0) {
    printf("interestd %s\n", INTERESTD_VERSION);
    return 0;
  }
  fprintf(stderr, "interestd: not yet wired\n");
  return 2;
}
