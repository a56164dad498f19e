"""Users' code: packages uploaded by hash, and the Ray runtime_env that ships them to workers."""
