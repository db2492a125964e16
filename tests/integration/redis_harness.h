/* A real redis-server for tests: started on a free loopback port (killed
 * with the test: PR_SET_PDEATHSIG), stopped with SIGKILL. Header-only. */
#ifndef IX_TESTS_REDIS_HARNESS_H
#define IX_TESTS_REDIS_HARNESS_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define R_UNUSED __attribute__((unused))

static R_UNUSED int r_have_redis(void) {
  return system("command -v redis-server >/dev/null 2>&1") == 0;
}

static R_UNUSED int r_free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0) return -1;
  socklen_t len = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &len);
  close(fd);
  return ntohs(a.sin_port);
}

/* Starts redis-server on 127.0.0.1:port; dir non-NULL = an append-only file
 * there fsynced before each reply (survives SIGKILL), else no persistence.
 * password may be NULL. Returns the pid once it answers, or -1. */
static R_UNUSED pid_t r_start(int port, const char *dir, const char *password) {
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    const char *argv[20] = {"redis-server", "--port", p, "--bind", "127.0.0.1", "--save", ""};
    int n = 7;
    if (dir) {
      argv[n++] = "--dir"; argv[n++] = dir;
      argv[n++] = "--appendonly"; argv[n++] = "yes";
      argv[n++] = "--appendfsync"; argv[n++] = "always";
    } else {
      argv[n++] = "--appendonly"; argv[n++] = "no";
    }
    if (password) {
      argv[n++] = "--requirepass"; argv[n++] = password;
    }
    argv[n] = NULL;
    execvp("redis-server", (char *const *)argv);
    _exit(127);
  }
  for (int i = 0; i < 200; i++) { /* up to 10 s */
    redisContext *c = redisConnect("127.0.0.1", port);
    int ok = 0;
    if (c && !c->err) {
      redisReply *r = redisCommand(c, "PING");
      /* a loading server answers -LOADING */
      ok = r && (r->type == REDIS_REPLY_STATUS ||
                 (r->type == REDIS_REPLY_ERROR && strstr(r->str, "NOAUTH")));
      freeReplyObject(r);
    }
    redisFree(c);
    if (ok) return pid;
    usleep(50000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  return -1;
}

static R_UNUSED void r_kill(pid_t pid) {
  if (pid <= 0) return;
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

#endif
