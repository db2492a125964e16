typedef int ix_daemon_placeholder_t;
