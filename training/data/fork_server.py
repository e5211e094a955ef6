"""Imported by the loader workers' fork server when it starts (worker_start.PRELOAD), never by the
trainer: the fork server ignores SIGTERM from then on. (Its workers inherit that, but PyTorch gives
each a SIGTERM handler of its own: `dataset.worker_init_fn` ignores it again.)

torchrun and Slurm send SIGTERM to a trainer's whole process group. The trainer stops after the
step in progress and writes its checkpoint (training/preemption.py); the workers must serve that
step, and the fork server must live on as well: PyTorch's workers quit when their parent (the fork
server) changes, and the trainer counts a worker whose fork server is gone as dead. Neither
outlives the trainer: the fork server exits when the trainer does, and the workers watch the trainer
(parent_watch). Python's resource tracker ignores SIGTERM for the same reason.
"""

import signal

signal.signal(signal.SIGTERM, signal.SIG_IGN)
