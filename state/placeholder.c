typedef int ix_state_placeholder_t;
