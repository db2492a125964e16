typedef int ix_model_placeholder_t;
