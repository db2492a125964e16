/* interestctl: offline tools (import, train, eval, record, replay). */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--version") == 0) {
    printf("interestctl %s\n", INTERESTD_VERSION);
    return 0;
  }
  fprintf(stderr, "interestctl: not yet wired\n");
  return 2;
}
