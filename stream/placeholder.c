/* placeholder, replaced by codec.c */
typedef int ix_stream_placeholder_t;
