"""More than one GPU: data parallel under torchrun, and FSDP2 sharding.

    distributed.py  the process group from torchrun's environment, rank-0 I/O, all-reduces
    fsdp.py         fully_shard over the decoder blocks, full-state checkpoints

See docs/multi_gpu.md.
"""
